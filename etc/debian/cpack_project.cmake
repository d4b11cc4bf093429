# Loaded by cpack (CPACK_PROJECT_CONFIG_FILE) before it packages. The .deb puts the binaries under the
# tree's install prefix and the configuration in that prefix's sysconfdir, so only a tree configured
# with -DCMAKE_INSTALL_PREFIX=/usr (binaries in /usr, configuration in /etc) makes a Debian package.
if(CPACK_GENERATOR STREQUAL "DEB" AND NOT CPACK_PACKAGING_INSTALL_PREFIX STREQUAL "/usr")
  message(FATAL_ERROR "the .deb needs a build tree configured with -DCMAKE_INSTALL_PREFIX=/usr "
                      "(this one has ${CPACK_PACKAGING_INSTALL_PREFIX})")
endif()
