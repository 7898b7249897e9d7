# Unity build of kvmready_lib (KVMREADY_UNITY_BUILD, on by default).
#
# Each unit re-parses the same heavy headers (json, fmt, the Facts headers),
# so the sources of one directory are compiled a few at a time as one unit:
# each directory is cut into ceil(n / KVMREADY_UNITY_CHUNK) groups of
# consecutive files (sorted by name). Files of different directories never
# share a unit, so a file can only clash with files of its own directory.
#
# A clash: two files of one directory define the same name in an anonymous
# namespace (or as static), e.g. "redefinition of 'std::string
# kvmready::checks::{anonymous}::errno_text(int)'" or "call of overloaded
# 'ms_since(...)' is ambiguous" in CMakeFiles/kvmready_lib.dir/Unity/*.cxx.
# Resolve it, best first:
#   1. the two are the same helper: keep one copy in a header of the
#      directory (e.g. src/smoke/common.hpp's tail_of) and delete the other;
#   2. rename one of them (e.g. src/host/nftables.cpp's kNftTimeoutMs);
#   3. add the file to KVMREADY_UNITY_SKIP below (compiled alone again).
# The normal build is the check: it fails on any clash, in CI too.
#
# -DKVMREADY_UNITY_BUILD=OFF compiles one unit per file (an edit then
# recompiles one file instead of its group).

set(KVMREADY_UNITY_CHUNK 8 CACHE STRING "Most source files per unity unit of kvmready_lib")

# Files that clash with a neighbour (option 3 above; none today); paths relative to
# the source directory.
set(KVMREADY_UNITY_SKIP)

if(KVMREADY_UNITY_BUILD)
  set_target_properties(kvmready_lib PROPERTIES UNITY_BUILD ON UNITY_BUILD_MODE GROUP)
  get_target_property(_kvmready_sources kvmready_lib SOURCES)
  set(_kvmready_dirs "")
  foreach(_src IN LISTS _kvmready_sources)
    file(RELATIVE_PATH _rel ${PROJECT_SOURCE_DIR} ${_src})
    get_source_file_property(_skip ${_src} SKIP_UNITY_BUILD_INCLUSION)
    if(_rel IN_LIST KVMREADY_UNITY_SKIP OR _skip)
      continue()
    endif()
    get_filename_component(_dir ${_rel} DIRECTORY)
    string(MAKE_C_IDENTIFIER "${_dir}" _id)
    list(APPEND _kvmready_dirs ${_id})
    list(APPEND _kvmready_in_${_id} ${_src})
  endforeach()
  list(REMOVE_DUPLICATES _kvmready_dirs)
  foreach(_id IN LISTS _kvmready_dirs)
    list(SORT _kvmready_in_${_id})
    list(LENGTH _kvmready_in_${_id} _n)
    math(EXPR _groups "(${_n} + ${KVMREADY_UNITY_CHUNK} - 1) / ${KVMREADY_UNITY_CHUNK}")
    set(_i 0)
    foreach(_src IN LISTS _kvmready_in_${_id})
      # Spread evenly: 10 files in chunks of 8 are two groups of 5, not 8 + 2.
      math(EXPR _g "${_i} * ${_groups} / ${_n}")
      set_source_files_properties(${_src} PROPERTIES UNITY_GROUP ${_id}_${_g})
      math(EXPR _i "${_i} + 1")
    endforeach()
  endforeach()
endif()
