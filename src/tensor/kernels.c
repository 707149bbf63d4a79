/* kernels.c — run-time kernel selection (see kernels.h). Compiled without ISA flags. */
#include "tensor/kernels.h"

#include "core/cpu.h"
#include "core/log.h"
#include "tensor/ref/kernels_ref.h"
#if defined(KS_HAVE_ARM_KERNELS)
#include "tensor/arm/kernels_arm.h"
#endif
#if defined(KS_HAVE_X86_KERNELS)
#include "tensor/x86/kernels_x86.h"
#endif

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static ks_kernels ref_set, avx2_set, avx512_set, amx_set, neon_set;
static int have_avx2, have_avx512, have_amx, have_neon;
static const ks_kernels *selected;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void build_sets(void) {
    ks_kernels_ref_fill(&ref_set);
    ref_set.isa = "ref";
#if !defined(KS_REF_ONLY)
    const ks_cpu_features *f = ks_cpu_detect();
#if defined(KS_HAVE_X86_KERNELS)
    if (f->avx2 && f->fma && f->f16c) {
        avx2_set = ref_set;
        avx2_set.isa = "avx2";
        ks_kernels_register_avx2(&avx2_set);
        ks_elementwise_avx2_register(&avx2_set);
        ks_panel_q8_0_avx2_register(&avx2_set);
        ks_panel_k_avx2_register(&avx2_set);
        have_avx2 = 1;
    }
    if (have_avx2 && f->avx512f && f->avx512bw && f->avx512vl && f->avx512dq && f->avx512vnni) {
        avx512_set = avx2_set;
        avx512_set.isa = "avx512";
        /* a 4-row kernel must match its own table's vec_dot: none is inherited */
        memset(avx512_set.vec_dot_4, 0, sizeof avx512_set.vec_dot_4);
        memset(avx512_set.vec_dot_2w, 0, sizeof avx512_set.vec_dot_2w);
        ks_kernels_register_avx512(&avx512_set);
        ks_elementwise_avx512_register(&avx512_set);
        if (f->avx512bf16) /* else BF16 rows keep the AVX2 dot (Ice Lake, Cascade Lake) */
            ks_vec_dot_avx512bf16_register(&avx512_set);
        /* Intel cores before Golden Cove (Skylake-SP to Ice Lake; the FP16 arithmetic came
         * with Sapphire Rapids) issue an FMA with a folded broadcast about once a cycle:
         * there, attention whose broadcasts do not take FMA issue slots. A Sapphire Rapids
         * VM issues folded ones at the two FMA ports' rate and runs the plain tiles the
         * faster (bench_attention --shape qwen3-30b-a3b, alternated, medians: decode at 16K
         * 1 thread 197 -> 172 ms, 2 threads 121.6 -> 113.2; prefill 512 at 4K 11.1 -> 9.9 s;
         * the Qwen3-0.6B shape's decode at 16K 92.5 -> 85.9 ms) */
        if (f->intel && !f->avx512fp16) {
            ks_attn_bcast_avx512_register(&avx512_set);
            ks_attn_f16p_shared_avx512_register(&avx512_set);
        }
        have_avx512 = 1;
    }
    /* the AVX-512 table plus tile GEMMs for prefill, once Linux lets us use the tiles */
    if (have_avx512 && f->amx_int8 && ks_amx_request()) {
        amx_set = avx512_set;
        amx_set.isa = "amx";
        ks_gemm_amx_register(&amx_set);
        /* Q4_K and Q6_K stay in rows, where tiles take their prefill (see panel_k_avx512.c,
         * panel_q6_k_avx512.c); Q5_K, which has no tiles, keeps its panels */
        memset(&amx_set.panel[KS_TYPE_Q4_K], 0, sizeof amx_set.panel[KS_TYPE_Q4_K]);
        memset(&amx_set.panel[KS_TYPE_Q6_K], 0, sizeof amx_set.panel[KS_TYPE_Q6_K]);
        ks_gemm_panel_amx_register(&amx_set);
        if (f->amx_bf16)
            ks_attn_amx_register(&amx_set);
        have_amx = 1;
    }
#elif defined(KS_HAVE_ARM_KERNELS)
    if (f->neon) {
        neon_set = ref_set;
        neon_set.isa = "neon";
        ks_kernels_register_neon(&neon_set);
        /* SDOT integer dot products over the widening-multiply ones: only where the
         * CPU has them, as SDOT is undefined on ARMv8.0 cores (Cortex-A53/A57/A72) */
        if (f->dotprod)
            ks_kernels_register_neon_dotprod(&neon_set);
        have_neon = 1;
    }
#else
    (void)f;
#endif
#endif
    const ks_kernels *best = &ref_set;
    if (have_avx2) best = &avx2_set;
    if (have_avx512) best = &avx512_set;
    if (have_amx) best = &amx_set;
    if (have_neon) best = &neon_set;

    const char *force = getenv("KS_KERNELS");
    if (force && *force) {
        const ks_kernels *k = ks_kernels_for_isa(force);
        if (k) {
            best = k;
        } else {
            KS_LOGW("KS_KERNELS=%s is not available on this CPU or build; using ref", force);
            best = &ref_set;
        }
    }
    selected = best;
}

static void ensure_built(void);

const ks_kernels *ks_kernels_get(void) {
    ensure_built();
    return selected;
}

const ks_kernels *ks_kernels_ref(void) {
    ensure_built();
    return &ref_set;
}

/* build_sets() calls ks_kernels_for_isa() for KS_KERNELS, so the lookup must not
 * recurse into pthread_once: it reads the sets directly. */
static const ks_kernels *lookup(const char *isa) {
    if (!strcmp(isa, "ref")) return &ref_set;
    if (!strcmp(isa, "avx2") && have_avx2) return &avx2_set;
    if (!strcmp(isa, "avx512") && have_avx512) return &avx512_set;
    if (!strcmp(isa, "amx") && have_amx) return &amx_set;
    if (!strcmp(isa, "neon") && have_neon) return &neon_set;
    return NULL;
}

const ks_kernels *ks_kernels_for_isa(const char *isa) {
    if (ref_set.isa == NULL)
        ensure_built();
    return lookup(isa);
}

static void ensure_built(void) { pthread_once(&once, build_sets); }
