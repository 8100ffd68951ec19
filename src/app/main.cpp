// Entry point of the `dpunet` CLI: train, predict, data, export, bench and plot live in
// their own files under src/app/ and register themselves through commands.h.
#include <cstdio>
#include <exception>

#include <c10/util/Exception.h>
#include <CLI/CLI.hpp>

#include "app/commands.h"
#include "common/error.h"
#include "dist/context.h"

int main(int argc, char** argv) {
  CLI::App app{"dpunet: data-parallel U-Net training on LibTorch, MPI and NCCL"};
  app.require_subcommand(1);
  int exit_code = 0;
  dpunet::app::add_train_command(app, &exit_code);
  dpunet::app::add_data_commands(app);
  dpunet::app::add_plot_command(app);
  dpunet::app::add_predict_command(app);
  dpunet::app::add_export_command(app);
  dpunet::app::add_bench_commands(app);
  dpunet::app::add_version_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const dpunet::Error& e) {
    return dpunet::dist::report_fatal_error(e.what());
  } catch (const c10::Error& e) {
    return dpunet::dist::report_fatal_error(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return dpunet::dist::report_fatal_error(e.what());
  }
  return exit_code;
}
