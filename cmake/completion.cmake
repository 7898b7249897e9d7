# Writes the bash, zsh and fish completion scripts that the built kvmready
# prints (`kvmready __completion SHELL`, generated from its own CLI11 tree).
# Run by the `completions` target (part of ALL), so the package ships them.
# Usage: cmake -DKVMREADY=path/to/kvmready -DOUT=dir -P completion.cmake
file(MAKE_DIRECTORY ${OUT})
foreach(pair "bash:kvmready" "zsh:_kvmready" "fish:kvmready.fish")
  string(REPLACE ":" ";" pair ${pair})
  list(GET pair 0 shell)
  list(GET pair 1 name)
  execute_process(COMMAND ${KVMREADY} __completion ${shell}
                  OUTPUT_FILE ${OUT}/${name}.tmp RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    file(REMOVE ${OUT}/${name}.tmp)
    message(FATAL_ERROR "kvmready __completion ${shell} failed (${rc}): ${err}")
  endif()
  # Renamed into place: a failed run leaves the old script whole.
  file(RENAME ${OUT}/${name}.tmp ${OUT}/${name})
endforeach()
