// `dpunet version`: what this binary was built with and what it can see.
#include <cstdio>

#include "app/commands.h"
#include "common/build_info.h"

namespace dpunet::app {

void add_version_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("version", "Print versions and GPU capabilities");
  cmd->callback([] {
    const BuildInfo info = build_info();
    std::printf("dpunet %s\nlibtorch %s (CUDA build: %s, GPUs visible: %d)\nNCCL path: %s\n",
                info.dpunet_version.c_str(), info.torch_version.c_str(), info.torch_cuda ? "yes" : "no",
                info.cuda_devices, info.nccl_version.empty() ? "not compiled in" : info.nccl_version.c_str());
  });
}

}  // namespace dpunet::app
