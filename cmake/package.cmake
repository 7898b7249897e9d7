# Installation layout and the Debian package (CPack, DEB generator):
#   scripts/dev.sh package     or, after a build,     cmake --build build --target package
# CPack packages the binary the build already made (no second build, unlike
# dpkg-buildpackage with a debian/ directory), stripped. The packaging files
# live in packaging/ (units, cron.d, nrpe.d, copyright, changelog, maintainer
# scripts), a folder that does not claim to be a Debian source package.
# CPack (and `make install`) take the build as it is instead of building
# ALL first: the package test runs cpack while ctest runs in the same tree.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)
set(KVMREADY_PKG_SRC ${PROJECT_SOURCE_DIR}/packaging)
set(KVMREADY_PKG_OUT ${CMAKE_BINARY_DIR}/packaging)

# Completion scripts printed by the built tool (cmake/completion.cmake).
set(KVMREADY_COMPLETIONS ${CMAKE_BINARY_DIR}/completions/kvmready ${CMAKE_BINARY_DIR}/completions/_kvmready
    ${CMAKE_BINARY_DIR}/completions/kvmready.fish)
add_custom_command(OUTPUT ${KVMREADY_COMPLETIONS}
  COMMAND ${CMAKE_COMMAND} -DKVMREADY=$<TARGET_FILE:kvmready> -DOUT=${CMAKE_BINARY_DIR}/completions
          -P ${PROJECT_SOURCE_DIR}/cmake/completion.cmake
  DEPENDS kvmready ${PROJECT_SOURCE_DIR}/cmake/completion.cmake
  COMMENT "Generating the bash, zsh and fish completion scripts"
  VERBATIM)
# Compressed as Debian policy wants (-n: no name or time stamp inside).
find_program(GZIP_PROGRAM gzip REQUIRED)
set(KVMREADY_GZIPPED ${KVMREADY_PKG_OUT}/kvmready.1.gz ${KVMREADY_PKG_OUT}/changelog.Debian.gz)
add_custom_command(OUTPUT ${KVMREADY_GZIPPED}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${KVMREADY_PKG_OUT}
  COMMAND sh -c "${GZIP_PROGRAM} -9nc \"$1\" > \"$2\"" sh ${PROJECT_SOURCE_DIR}/man/kvmready.1 ${KVMREADY_PKG_OUT}/kvmready.1.gz
  COMMAND sh -c "${GZIP_PROGRAM} -9nc \"$1\" > \"$2\"" sh ${KVMREADY_PKG_SRC}/changelog ${KVMREADY_PKG_OUT}/changelog.Debian.gz
  DEPENDS ${PROJECT_SOURCE_DIR}/man/kvmready.1 ${KVMREADY_PKG_SRC}/changelog
  VERBATIM)
add_custom_target(completions ALL DEPENDS ${KVMREADY_COMPLETIONS} ${KVMREADY_GZIPPED})

# The packaging changelog's newest entry names the version being packaged.
file(STRINGS ${KVMREADY_PKG_SRC}/changelog kvmready_changelog_head LIMIT_COUNT 1)
if(NOT kvmready_changelog_head MATCHES "^kvmready \\(${PROJECT_VERSION}-")
  message(FATAL_ERROR "packaging/changelog: the first entry is not for ${PROJECT_VERSION}: ${kvmready_changelog_head}")
endif()

include(GNUInstallDirs)
install(TARGETS kvmready RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${KVMREADY_PKG_OUT}/kvmready.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${CMAKE_BINARY_DIR}/completions/kvmready DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/bash-completion/completions)
install(FILES ${CMAKE_BINARY_DIR}/completions/_kvmready DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/zsh/vendor-completions)
install(FILES ${CMAKE_BINARY_DIR}/completions/kvmready.fish DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/fish/vendor_completions.d)
# System integration (/etc, systemd units) only in the package: a plain
# `cmake --install` into /usr/local must not write /etc.
install(FILES ${KVMREADY_PKG_SRC}/copyright ${KVMREADY_PKG_SRC}/README.Debian ${KVMREADY_PKG_OUT}/changelog.Debian.gz
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/kvmready COMPONENT system EXCLUDE_FROM_ALL)
install(FILES ${KVMREADY_PKG_SRC}/lintian/kvmready
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/lintian/overrides COMPONENT system EXCLUDE_FROM_ALL)
install(FILES ${KVMREADY_PKG_SRC}/systemd/unprivileged.conf
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/kvmready/examples COMPONENT system EXCLUDE_FROM_ALL)
install(FILES ${KVMREADY_PKG_SRC}/systemd/kvmready.service ${KVMREADY_PKG_SRC}/systemd/kvmready.timer
        DESTINATION lib/systemd/system COMPONENT system EXCLUDE_FROM_ALL)
install(FILES ${KVMREADY_PKG_SRC}/cron.d/kvmready DESTINATION /etc/cron.d COMPONENT system EXCLUDE_FROM_ALL)
install(FILES ${KVMREADY_PKG_SRC}/nrpe.d/kvmready.cfg DESTINATION /etc/nagios/nrpe.d COMPONENT system EXCLUDE_FROM_ALL)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME kvmready)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_CONTACT "kvmready developers <dev@kvmready.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "check whether a Linux host can run KVM virtual machines")
# Every component in one package (the "system" one is left out of plain installs).
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_GROUPING ALL_COMPONENTS_IN_ONE)
set(CPACK_COMPONENTS_ALL Unspecified system)
set(CPACK_DEBIAN_PACKAGE_NAME kvmready)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# postinst's adduser; the binary's libraries come from dpkg-shlibdeps.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
# dlopen()ed at run time (src/util/dynlib.hpp): shlibdeps cannot see them.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "libvirt0, libarchive13, libxml2")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "qemu-system-x86, libvirt-daemon-system")
# CPack puts the summary first and indents these lines as policy wants.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "kvmready answers whether this host can run KVM guests and, if not, why
and how to fix it: a functional /dev/kvm test, CPU, firmware, kernel,
libvirt and network checks, a fix planner, support bundles and a smoke
test that boots a throwaway guest.

libvirt0, libarchive13 and libxml2 are recommended, not required: kvmready
loads them with dlopen() only for the commands that need them (libvirt
checks, support bundles). A systemd timer and a cron.d job (both disabled)
write Prometheus and node-feature-discovery files; an NRPE command is
included.")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${KVMREADY_PKG_SRC}/debian/conffiles ${KVMREADY_PKG_SRC}/debian/postinst
    ${KVMREADY_PKG_SRC}/debian/prerm ${KVMREADY_PKG_SRC}/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_BINARY_DIR})
include(CPack)
