# LibTorch from a CUDA build of the torch wheel, for a machine without the CUDA toolkit:
# the libraries and headers the C++ API needs, as an imported target `torch`, with the
# GPU path off. The CUDA libraries the wheel's own libraries load come from the wheel's
# nvidia packages at run time (their RUNPATH), not from this link.
function(dpunet_torch_without_cuda torch_root version)
  set(lib "${torch_root}/lib")
  foreach(library torch torch_cpu c10)
    if(NOT EXISTS "${lib}/lib${library}.so")
      message(FATAL_ERROR "${lib}/lib${library}.so not found: is ${torch_root} a torch wheel? Re-run scripts/setup.sh")
    endif()
  endforeach()
  # The C++ ABI the wheel was built with, as its own CMake config states it.
  file(STRINGS "${torch_root}/share/cmake/Torch/TorchConfig.cmake" abi REGEX "_GLIBCXX_USE_CXX11_ABI=[01]")
  string(REGEX MATCH "_GLIBCXX_USE_CXX11_ABI=[01]" abi "${abi}")
  if(abi STREQUAL "")
    set(abi "_GLIBCXX_USE_CXX11_ABI=1")
  endif()
  add_library(torch SHARED IMPORTED GLOBAL)
  set_target_properties(torch PROPERTIES
    IMPORTED_LOCATION "${lib}/libtorch.so"
    INTERFACE_INCLUDE_DIRECTORIES "${torch_root}/include;${torch_root}/include/torch/csrc/api/include"
    INTERFACE_LINK_LIBRARIES "${lib}/libtorch_cpu.so;${lib}/libc10.so"
    INTERFACE_COMPILE_DEFINITIONS "${abi}"
    # libtorch.so needs libtorch_cuda.so and it the CUDA runtime: found through their
    # RUNPATH when the program starts; the linker need not resolve them.
    INTERFACE_LINK_OPTIONS "LINKER:--allow-shlib-undefined")
  set(TORCH_LIBRARIES torch PARENT_SCOPE)
  set(Torch_VERSION "${version}" PARENT_SCOPE)
  set(Torch_DIR "${torch_root}" PARENT_SCOPE)
  set(DPUNET_TORCH_CPU_ONLY ON PARENT_SCOPE)
  message(STATUS "dpunet: no CUDA toolkit found: building for CPUs only, against the CUDA build of torch "
                 "${version} in ${torch_root} (install the CUDA toolkit and reconfigure for GPUs)")
endfunction()
