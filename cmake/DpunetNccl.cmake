# Decides whether the CUDA/NCCL path is compiled in (DPUNET_WITH_NCCL: AUTO, ON, OFF) and
# sets DPUNET_NCCL_ENABLED accordingly.
set(DPUNET_NCCL_ENABLED OFF)
if(NOT DPUNET_WITH_NCCL STREQUAL "OFF")
  find_package(NCCL)
  find_package(CUDAToolkit QUIET)
  if(DPUNET_TORCH_HAS_CUDA AND NCCL_FOUND AND CUDAToolkit_FOUND)
    set(DPUNET_NCCL_ENABLED ON)
  elseif(DPUNET_WITH_NCCL STREQUAL "ON")
    message(FATAL_ERROR
      "DPUNET_WITH_NCCL=ON but the GPU path cannot be built: LibTorch CUDA=${DPUNET_TORCH_HAS_CUDA}, "
      "NCCL found=${NCCL_FOUND}, CUDA toolkit found=${CUDAToolkit_FOUND}.\n"
      "Hint: use a CUDA build of LibTorch, install the CUDA toolkit, and point NCCL_HOME at an NCCL "
      "install (or pip install nvidia-nccl-cu13 into .venv); or configure with -DDPUNET_WITH_NCCL=OFF.")
  endif()
endif()
message(STATUS "dpunet: CUDA/NCCL path ${DPUNET_NCCL_ENABLED} (DPUNET_WITH_NCCL=${DPUNET_WITH_NCCL}, NCCL ${NCCL_VERSION})")
