# Rewrites the generated check and fix lists of README.md and man/kvmready.1
# from the registries (`kvmready __doc-lists KIND FILE` prints the document
# with them regenerated). Run by `cmake --build build --target docs`;
# tests/docs_test.cpp fails when the committed text differs.
# Usage: cmake -DKVMREADY=path/to/kvmready -DSRC=source-dir -P docs.cmake
function(regenerate kind file)
  execute_process(COMMAND ${KVMREADY} __doc-lists ${kind} ${SRC}/${file}
                  OUTPUT_VARIABLE text RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "kvmready __doc-lists ${kind} ${file} failed (${rc}): ${err}")
  endif()
  file(READ ${SRC}/${file} old)
  if(old STREQUAL text)
    message(STATUS "${file}: lists up to date")
  else()
    # Written beside, then renamed: a failed write leaves the old file whole.
    file(WRITE ${SRC}/${file}.tmp "${text}")
    file(RENAME ${SRC}/${file}.tmp ${SRC}/${file})
    message(STATUS "${file}: lists regenerated")
  endif()
endfunction()

regenerate(readme README.md)
regenerate(man man/kvmready.1)
