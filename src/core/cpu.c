/* cpu.c — CPU feature detection (see cpu.h). No ISA compile flags here: only CPUID,
 * XGETBV (through inline asm on x86-64) and getauxval on aarch64. */
#include "core/cpu.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <cpuid.h>
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#include <asm/hwcap.h>
#endif

static ks_cpu_features g_features;
static int g_detected;

#if defined(__x86_64__)
static unsigned long long xgetbv0(void) {
    unsigned int eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

static void detect_x86(ks_cpu_features *f) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d))
        return;
    memcpy(f->vendor, &b, 4);
    memcpy(f->vendor + 4, &d, 4);
    memcpy(f->vendor + 8, &c, 4);
    f->vendor[12] = '\0';
    f->intel = strcmp(f->vendor, "GenuineIntel") == 0;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return;
    bool osxsave = (c >> 27) & 1;
    bool avx = (c >> 28) & 1;
    bool fma = (c >> 12) & 1;
    bool f16c = (c >> 29) & 1;
    if (!osxsave || !avx)
        return;
    unsigned long long xcr0 = xgetbv0();
    bool os_ymm = (xcr0 & 0x6) == 0x6;             /* XMM and YMM state */
    bool os_zmm = (xcr0 & 0xe6) == 0xe6;           /* plus opmask, ZMM_Hi256, Hi16_ZMM */
    if (!os_ymm)
        return;
    unsigned int a7, b7, c7, d7;
    __cpuid_count(7, 0, a7, b7, c7, d7);
    f->avx2 = (b7 >> 5) & 1;
    f->fma = fma;
    f->f16c = f16c;
    if (os_zmm) {
        f->avx512f = (b7 >> 16) & 1;
        f->avx512dq = (b7 >> 17) & 1;
        f->avx512bw = (b7 >> 30) & 1;
        f->avx512vl = (b7 >> 31) & 1;
        f->avx512vnni = (c7 >> 11) & 1;
        f->avx512fp16 = (d7 >> 23) & 1;
        unsigned int a71, b71, c71, d71;
        __cpuid_count(7, 1, a71, b71, c71, d71);
        f->avx512bf16 = (a71 >> 5) & 1;
        f->avxvnni = (a71 >> 4) & 1;
        bool os_tiles = (xcr0 & 0x60000) == 0x60000;   /* XTILECFG and XTILEDATA */
        f->amx_int8 = os_tiles && ((d7 >> 24) & 1) && ((d7 >> 25) & 1);
        f->amx_bf16 = os_tiles && ((d7 >> 24) & 1) && ((d7 >> 22) & 1);
    } else {
        unsigned int a71, b71, c71, d71;
        __cpuid_count(7, 1, a71, b71, c71, d71);
        f->avxvnni = (a71 >> 4) & 1;
    }
}
#endif

/* Physical cores: count distinct (physical id, core id) pairs in /proc/cpuinfo; falls
 * back to the logical count. */
static int count_physical_cores(int n_logical) {
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (!fp)
        return n_logical;
    char line[256];
    int phys = -1, core = -1, n = 0;
    int seen[1024][2];
    while (fgets(line, sizeof line, fp)) {
        if (sscanf(line, "physical id : %d", &phys) == 1)
            continue;
        if (sscanf(line, "core id : %d", &core) == 1) {
            int dup = 0;
            for (int i = 0; i < n; i++)
                if (seen[i][0] == phys && seen[i][1] == core)
                    dup = 1;
            if (!dup && n < 1024) {
                seen[n][0] = phys;
                seen[n][1] = core;
                n++;
            }
        }
    }
    fclose(fp);
    return n > 0 ? n : n_logical;
}

const ks_cpu_features *ks_cpu_detect(void) {
    if (g_detected)
        return &g_features;
    ks_cpu_features f;
    memset(&f, 0, sizeof f);
#if defined(__x86_64__)
    detect_x86(&f);
#elif defined(__aarch64__)
    f.neon = true;
#if defined(__linux__)
    unsigned long hw = getauxval(AT_HWCAP);
#ifdef HWCAP_ASIMDDP
    f.dotprod = (hw & HWCAP_ASIMDDP) != 0;
#endif
    unsigned long hw2 = getauxval(AT_HWCAP2);
#ifdef HWCAP2_I8MM
    f.i8mm = (hw2 & HWCAP2_I8MM) != 0;
#endif
    (void)hw2;
#endif
#endif
    long nl = sysconf(_SC_NPROCESSORS_ONLN);
    f.n_logical_cpus = nl > 0 ? (int)nl : 1;
    f.n_physical_cores = count_physical_cores(f.n_logical_cpus);
    g_features = f;
    g_detected = 1;
    return &g_features;
}

void ks_cpu_describe(const ks_cpu_features *f, char *buf, int buf_len) {
    int n = 0;
#define PUT(...) do { if (n < buf_len) n += snprintf(buf + n, (size_t)(buf_len - n), __VA_ARGS__); } while (0)
#if defined(__x86_64__)
    PUT("x86-64");
    if (f->vendor[0]) PUT(" %s", f->vendor);
    if (f->avx2) PUT(" AVX2");
    if (f->fma) PUT(" FMA");
    if (f->f16c) PUT(" F16C");
    if (f->avx512f) {
        PUT(" AVX512(F");
        if (f->avx512bw) PUT(",BW");
        if (f->avx512vl) PUT(",VL");
        if (f->avx512vnni) PUT(",VNNI");
        if (f->avx512bf16) PUT(",BF16");
        if (f->avx512fp16) PUT(",FP16");
        if (f->amx_int8) PUT(",AMX-INT8");
        if (f->amx_bf16) PUT(",AMX-BF16");
        PUT(")");
    }
    if (f->avxvnni) PUT(" AVX-VNNI");
#elif defined(__aarch64__)
    PUT("aarch64 NEON");
    if (f->dotprod) PUT(" DOTPROD");
    if (f->i8mm) PUT(" I8MM");
#else
    PUT("generic");
#endif
    PUT(", %d cores / %d threads", f->n_physical_cores, f->n_logical_cpus);
#undef PUT
}
