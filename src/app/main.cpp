// Entry point of the `dpunet` CLI: train, predict, data, export, bench and plot live in
// their own files under src/app/ and register themselves through commands.h.
#include <cstdio>
#include <exception>

#include <c10/util/Exception.h>
#include <CLI/CLI.hpp>

#include "app/commands.h"
#include "common/error.h"

int main(int argc, char** argv) {
  CLI::App app{"dpunet: data-parallel U-Net training on LibTorch, MPI and NCCL"};
  app.require_subcommand(1);
  dpunet::app::add_bench_commands(app);
  dpunet::app::add_version_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const dpunet::Error& e) {
    std::fprintf(stderr, "dpunet: error: %s\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "dpunet: error: %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dpunet: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
