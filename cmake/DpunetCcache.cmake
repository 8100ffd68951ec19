# Routes compiles through ccache; PCH builds need its pch_defines/time_macros sloppiness.
if(DPUNET_USE_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  find_program(DPUNET_CCACHE ccache)
  if(DPUNET_CCACHE)
    set(CMAKE_CXX_COMPILER_LAUNCHER
        ${CMAKE_COMMAND} -E env "CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime"
        ${DPUNET_CCACHE})
  endif()
endif()
