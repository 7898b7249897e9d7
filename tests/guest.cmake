# Guest-kernel tests: tests/guest_kernel_test.cpp boots Debian's cloud kernel
# under QEMU TCG with a throwaway initramfs (tests/guest/) and runs kvmready
# inside it. This file builds the guest's static init and tells the test where
# its pieces are. The kernel itself is fetched on demand, never at configure
# time:  scripts/fetch-guest-kernel.sh   (or: cmake --build BUILD --target guest-kernel)
# Included from tests/CMakeLists.txt, so kvmready and kvmready_tests exist.

include(CheckCSourceCompiles)
set(CMAKE_REQUIRED_LINK_OPTIONS -static)
check_c_source_compiles("int main(void) { return 0; }" KVMREADY_HAVE_STATIC_LIBC)
unset(CMAKE_REQUIRED_LINK_OPTIONS)

if(KVMREADY_HAVE_STATIC_LIBC)
  add_executable(kvmready_guest_init ${CMAKE_CURRENT_SOURCE_DIR}/guest/init.c)
  set_target_properties(kvmready_guest_init PROPERTIES
    C_STANDARD 11
    C_EXTENSIONS ON
    OUTPUT_NAME init
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/guest)
  target_compile_options(kvmready_guest_init PRIVATE -O2)
  target_link_options(kvmready_guest_init PRIVATE -static)
  add_dependencies(kvmready_tests kvmready_guest_init)
  target_compile_definitions(kvmready_tests PRIVATE
    KVMREADY_GUEST_INIT="$<TARGET_FILE:kvmready_guest_init>")
else()
  message(STATUS "kvmready: no static libc (libc6-dev's libc.a); guest-kernel tests will skip")
endif()

target_compile_definitions(kvmready_tests PRIVATE
  KVMREADY_GUEST_DIR="${CMAKE_CURRENT_SOURCE_DIR}/guest"
  KVMREADY_SCRIPTS_DIR="${PROJECT_SOURCE_DIR}/scripts")

# Convenience: download/unpack the guest kernel into the default cache.
add_custom_target(guest-kernel
  COMMAND ${PROJECT_SOURCE_DIR}/scripts/fetch-guest-kernel.sh
  COMMENT "Fetching the guest kernel for the guest-kernel tests"
  USES_TERMINAL
  VERBATIM)
