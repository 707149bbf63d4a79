# aarch64-linux-gnu.cmake — CMake toolchain for 64-bit ARM Linux with Debian's cross
# compiler (package gcc-aarch64-linux-gnu, C library libc6-dev-arm64-cross), for
#
#   cmake -S <dir> -B <build> -DCMAKE_TOOLCHAIN_FILE=$PWD/cmake/aarch64-linux-gnu.cmake
#
# CMAKE_SYSTEM_PROCESSOR = aarch64 is what selects the NEON kernels (src/tensor/arm/)
# in CMakeLists.txt. Programs built with it run on x86-64 under qemu-user (package
# qemu-user-static): link them with -static, or point qemu at the target's libraries
# (-L /usr/aarch64-linux-gnu). make test-arm builds tests/kernels/cross_arm this way.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)

# Headers, libraries and pkg-config packages from the target's root only; programs
# (code generators, pkg-config itself) from the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# try_run() and tests registered without an explicit runner go through qemu.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static -L /usr/aarch64-linux-gnu)
