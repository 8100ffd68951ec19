# Routes compiles through ccache; PCH builds need its pch_defines/time_macros sloppiness,
# and a base directory makes paths relative so that every checkout shares the cache.
if(DPUNET_USE_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  find_program(DPUNET_CCACHE ccache)
  if(DPUNET_CCACHE)
    set(CMAKE_CXX_COMPILER_LAUNCHER
        ${CMAKE_COMMAND} -E env "CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime"
        "CCACHE_BASEDIR=${PROJECT_SOURCE_DIR}"
        ${DPUNET_CCACHE})
  endif()
endif()
