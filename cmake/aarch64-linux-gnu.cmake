# Cross build of libonebit and onebit-run for 64-bit ARM Linux (Raspberry Pi 4B / 5 on a 64-bit OS, Jetson,
# Graviton, ...) with Debian's cross compiler (apt-get install g++-aarch64-linux-gnu):
#
#   cmake -S . -B build-arm -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
#   cmake --build build-arm -j2 --target onebit-run
#
# The binaries run on the board, or here under qemu-user (apt-get install qemu-user):
#   qemu-aarch64 -L /usr/aarch64-linux-gnu build-arm/onebit-run MODEL.onebit INPUT.npy
# The NEON kernels (csrc/kernels_neon.cpp) are built for any aarch64 target and chosen at run time; no -mcpu is
# needed (ONEBIT_AARCH64_FLAGS=-mcpu=cortex-a72 tunes the schedule for a Pi 4B without changing any result:
# the project builds with -ffp-contract=off, so no target contracts a * b + c into an FMA).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(ONEBIT_CROSS_PREFIX "aarch64-linux-gnu-" CACHE STRING "Prefix of the aarch64 cross tools")
set(ONEBIT_AARCH64_SYSROOT "/usr/aarch64-linux-gnu" CACHE PATH "aarch64 libraries and headers (Debian's multiarch cross root)")
set(ONEBIT_AARCH64_FLAGS "" CACHE STRING "Extra target flags, e.g. -mcpu=cortex-a72")

set(CMAKE_C_COMPILER "${ONEBIT_CROSS_PREFIX}gcc")
set(CMAKE_CXX_COMPILER "${ONEBIT_CROSS_PREFIX}g++")
set(CMAKE_C_FLAGS_INIT "${ONEBIT_AARCH64_FLAGS}")
set(CMAKE_CXX_FLAGS_INIT "${ONEBIT_AARCH64_FLAGS}")

set(CMAKE_FIND_ROOT_PATH "${ONEBIT_AARCH64_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# try_run / ctest run target binaries through qemu when it is there
find_program(ONEBIT_QEMU_AARCH64 qemu-aarch64)
if(ONEBIT_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${ONEBIT_QEMU_AARCH64};-L;${ONEBIT_AARCH64_SYSROOT}")
endif()
