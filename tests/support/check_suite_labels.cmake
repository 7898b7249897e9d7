# Fails when a gtest suite of TEST_BINARY is not in the label table of
# tests/CMakeLists.txt (SUITES, comma-separated), or the table names a suite
# that no longer exists. Run as a CTest test:
#   cmake -DTEST_BINARY=... -DSUITES=A,B,... -P check_suite_labels.cmake
cmake_minimum_required(VERSION 3.22)  # IN_LIST
execute_process(COMMAND ${TEST_BINARY} --gtest_list_tests
  OUTPUT_VARIABLE listing RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${TEST_BINARY} --gtest_list_tests failed (${rc})")
endif()
string(REPLACE "," ";" labelled "${SUITES}")
string(REPLACE "\n" ";" lines "${listing}")
set(present "")
foreach(line IN LISTS lines)
  # Suite lines start in column 0 and end with '.', optionally followed by a
  # comment; value-parameterized suites read PREFIX/Suite.
  if(line MATCHES "^([A-Za-z0-9_/]+)\\.")
    string(REGEX REPLACE "^.*/" "" suite "${CMAKE_MATCH_1}")
    list(APPEND present ${suite})
  endif()
endforeach()
list(REMOVE_DUPLICATES present)
# Both differences of the two sets: present but not labelled, labelled but gone.
set(missing ${present})
set(stale ${labelled})
if(labelled)
  list(REMOVE_ITEM missing ${labelled})
endif()
if(present)
  list(REMOVE_ITEM stale ${present})
endif()
list(LENGTH present n)
if(missing OR stale)
  message(FATAL_ERROR "tests/CMakeLists.txt's label table is out of date:\n"
    "  suites without a label (add each to one KVMREADY_SUITES_<label>): ${missing}\n"
    "  labelled suites that do not exist: ${stale}")
endif()
message(STATUS "all ${n} test suites have a label")
