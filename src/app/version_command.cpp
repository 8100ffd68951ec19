// `dpunet version`: what this binary was built with and what it can see.
#include <cstdio>

#include "app/commands.h"
#include "common/build_info.h"

namespace dpunet::app {

void add_version_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("version", "Print versions and GPU capabilities");
  cmd->callback([] {
    const BuildInfo info = build_info();
    auto or_text = [](const std::string& value, const char* otherwise) {
      return value.empty() ? otherwise : value.c_str();
    };
    std::printf("dpunet %s\nlibtorch %s (CUDA build: %s, GPUs visible: %d)\n", info.dpunet_version.c_str(),
                info.torch_version.c_str(), info.torch_cuda ? "yes" : "no", info.cuda_devices);
    if (info.torch_cuda) {
      std::printf("CUDA runtime %s, cuDNN %s\n", or_text(info.cuda_runtime, "unknown"), or_text(info.cudnn, "none"));
    }
    std::printf("NCCL path: %s\n",
                info.nccl_compiled ? or_text(info.nccl_version, "compiled in (version unknown)") : "not compiled in");
    std::printf("MPI: %s\nHDF5 %s\n", or_text(info.mpi_library, "unknown"), or_text(info.hdf5_version, "unknown"));
    for (size_t i = 0; i < info.gpus.size(); ++i) std::printf("GPU %zu: %s\n", i, info.gpus[i].c_str());
  });
}

}  // namespace dpunet::app
