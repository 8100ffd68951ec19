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
    COMMAND "${DPUNET_PYTHON}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE _dpunet_torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE _dpunet_torch_rc ERROR_VARIABLE _dpunet_torch_err)
  if(NOT _dpunet_torch_rc EQUAL 0)
    message(FATAL_ERROR "${DPUNET_PYTHON} cannot import torch: ${_dpunet_torch_err}\n"
                        "Run scripts/setup.sh or pass -DTorch_DIR.")
  endif()
  list(APPEND CMAKE_PREFIX_PATH "${_dpunet_torch_prefix}")
  find_package(Torch REQUIRED CONFIG)
endif()

# The CUDA build of LibTorch defines torch_cuda; CPU-only builds do not.
if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES)
  set(DPUNET_TORCH_HAS_CUDA ON)
else()
  set(DPUNET_TORCH_HAS_CUDA OFF)
endif()
message(STATUS "dpunet: LibTorch ${Torch_VERSION} at ${Torch_DIR} (CUDA: ${DPUNET_TORCH_HAS_CUDA})")
