# Finds LibTorch: the one the user points at (Torch_DIR / CMAKE_PREFIX_PATH) or else the
# torch wheel in the project's virtualenv that scripts/setup.sh installs.
# DPUNET_VENV: the same variable scripts/setup.sh installs into.
if(DEFINED ENV{DPUNET_VENV})
  set(_dpunet_venv "$ENV{DPUNET_VENV}")
else()
  set(_dpunet_venv "${PROJECT_SOURCE_DIR}/.venv")
endif()
set(DPUNET_PYTHON "${_dpunet_venv}/bin/python" CACHE FILEPATH
    "Python whose torch package provides LibTorch when Torch_DIR is not set")

find_package(Torch QUIET CONFIG)
if(NOT Torch_FOUND)
  if(NOT EXISTS "${DPUNET_PYTHON}")
    message(FATAL_ERROR "LibTorch not found. Run scripts/setup.sh (installs the torch wheel into "
                        ".venv), or pass -DTorch_DIR=<libtorch>/share/cmake/Torch.")
  endif()
  execute_process(
    COMMAND "${DPUNET_PYTHON}" -c
            "import os, torch, torch.utils; print(torch.utils.cmake_prefix_path); print(os.path.dirname(torch.__file__)); print(torch.__version__.split('+')[0]); print(torch.version.cuda or '')"
    OUTPUT_VARIABLE _dpunet_torch_info OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE _dpunet_torch_rc ERROR_VARIABLE _dpunet_torch_err)
  if(NOT _dpunet_torch_rc EQUAL 0)
    message(FATAL_ERROR "${DPUNET_PYTHON} cannot import torch: ${_dpunet_torch_err}\n"
                        "Run scripts/setup.sh or pass -DTorch_DIR.")
  endif()
  string(REPLACE "\n" ";" _dpunet_torch_info "${_dpunet_torch_info}")
  list(GET _dpunet_torch_info 0 _dpunet_torch_prefix)
  list(GET _dpunet_torch_info 1 _dpunet_torch_root)
  list(GET _dpunet_torch_info 2 _dpunet_torch_version)
  list(LENGTH _dpunet_torch_info _dpunet_torch_fields)
  set(_dpunet_torch_cuda "")
  if(_dpunet_torch_fields GREATER 3)
    list(GET _dpunet_torch_info 3 _dpunet_torch_cuda)
  endif()
  # The wheel's CMake config (a CUDA build, as PyPI's torch is) stops without a CUDA
  # toolkit. A machine without one, which cannot build the GPU path anyway, links the
  # wheel's libraries directly instead and builds for CPUs.
  if(NOT _dpunet_torch_cuda STREQUAL "")
    find_package(CUDAToolkit QUIET)
  endif()
  # Nor can a toolkit of another major version than the wheel's (its headers and the
  # wheel's libraries disagree): that machine builds for CPUs too, and says why.
  set(_dpunet_toolkit_fits ${CUDAToolkit_FOUND})
  if(CUDAToolkit_FOUND)
    string(REGEX MATCH "^[0-9]+" _dpunet_wheel_cuda_major "${_dpunet_torch_cuda}")
    if(NOT CUDAToolkit_VERSION_MAJOR STREQUAL _dpunet_wheel_cuda_major)
      message(STATUS "dpunet: the CUDA toolkit is ${CUDAToolkit_VERSION}, the torch wheel's CUDA "
                     "${_dpunet_torch_cuda}: building for CPUs (install toolkit ${_dpunet_wheel_cuda_major}.x for "
                     "the GPU path)")
      set(_dpunet_toolkit_fits FALSE)
    endif()
  endif()
  if(NOT _dpunet_torch_cuda STREQUAL "" AND NOT _dpunet_toolkit_fits)
    include(DpunetTorchWithoutCuda)
    dpunet_torch_without_cuda("${_dpunet_torch_root}" "${_dpunet_torch_version}")
  else()
    list(APPEND CMAKE_PREFIX_PATH "${_dpunet_torch_prefix}")
    find_package(Torch REQUIRED CONFIG)
  endif()
endif()

# The CUDA build of LibTorch defines torch_cuda; CPU-only builds do not.
if(DPUNET_TORCH_CPU_ONLY)
  set(DPUNET_TORCH_HAS_CUDA OFF)
elseif(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES)
  set(DPUNET_TORCH_HAS_CUDA ON)
else()
  set(DPUNET_TORCH_HAS_CUDA OFF)
endif()
message(STATUS "dpunet: LibTorch ${Torch_VERSION} at ${Torch_DIR} (CUDA: ${DPUNET_TORCH_HAS_CUDA})")
