// Entry point of the `dpunet` CLI: train, predict, data, export, bench and plot live in
// their own files under src/app/ and register themselves through commands.h.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <c10/util/Exception.h>
#include <CLI/CLI.hpp>

#include "app/commands.h"
#include "common/build_info.h"
#include "common/error.h"
#include "common/launched_copies.h"
#include "common/text.h"
#include "data/h5_handle.h"
#include "dist/context.h"
#include "train/preemption.h"

namespace {

// Every rank keeps every training shard open; a dataset of more shards than the usual
// soft limit of 1024 descriptors must not fail in H5Fopen. The hard limit is the real one.
void raise_open_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);  // best effort: the old limit stays if this fails
}

// The launcher runs mpirun with --quiet, which also hides why a launch failed; a rank
// that started leaves this file behind, so that the launcher can tell the two apart.
void mark_started() {
  const char* path = std::getenv("DPUNET_LAUNCH_MARKER");
  if (path == nullptr || *path == '\0') return;
  if (std::FILE* f = std::fopen(path, "a")) std::fclose(f);  // best effort: a remote rank has no such folder
}

// A word where a command was expected that names none ("dpunet trian", "dpunet data
// imprt"): said with the commands there are, rather than CLI11's "A subcommand is
// required". Returns the message, or "" when the command line names its commands.
std::string unknown_command(CLI::App& app, int argc, char** argv) {
  CLI::App* at = &app;
  std::string said = "dpunet";
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    if (word.empty() || word[0] == '-') return "";  // options: CLI11 reads them
    const std::vector<CLI::App*> commands = at->get_subcommands([](CLI::App*) { return true; });
    if (commands.empty()) return "";
    const auto named = std::find_if(commands.begin(), commands.end(), [&](CLI::App* c) { return c->check_name(word); });
    if (named != commands.end()) {
      at = *named;
      said += " " + word;
      continue;
    }
    std::string names, nearest;
    size_t nearest_distance = 3;  // a misspelling, not another word
    for (CLI::App* c : commands) {
      names += (names.empty() ? "" : ", ") + c->get_name();
      const size_t distance = dpunet::edit_distance(word, c->get_name());
      if (distance < nearest_distance) nearest_distance = distance, nearest = c->get_name();
    }
    return "'" + word + "' is not a command of " + said +
           (nearest.empty() ? "" : " (did you mean '" + nearest + "'?)") + "; the commands are " + names + " (" + said +
           " --help)";
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  // A training rank takes stop requests (the launcher's SIGUSR1, a scheduler's SIGTERM)
  // from its first instruction, before the command line is read; the marker says so to
  // the launcher. (Only while its libraries load does SIGUSR1 still end it.)
  if (argc > 1 && std::strcmp(argv[1], "train") == 0) dpunet::train::install_preemption_handlers();
  mark_started();
  raise_open_file_limit();
  dpunet::data::skip_hdf5_exit_cleanup();
  CLI::App app{"dpunet: data-parallel U-Net training on LibTorch, MPI and NCCL", "dpunet"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "dpunet " + dpunet::dpunet_version() + " (dpunet version: libraries and GPUs)");
  int exit_code = 0;
  dpunet::app::add_train_command(app, &exit_code);
  dpunet::app::add_data_commands(app);
  dpunet::app::add_plot_command(app);
  dpunet::app::add_predict_command(app);
  dpunet::app::add_export_command(app);
  dpunet::app::add_bench_commands(app);
  dpunet::app::add_version_command(app);

  // Nothing at all: the help, as most tools answer. Both are command lines that do not
  // parse, with CLI11's code for a missing subcommand (106).
  constexpr int kMissingCommand = static_cast<int>(CLI::ExitCodes::RequiredError);
  if (argc == 1) {
    std::cout << app.help();
    return kMissingCommand;
  }
  // A command line every copy of a launch was given alike is said wrong once, by the
  // first copy: under mpirun -np 8, not eight times. The others leave a few seconds
  // later, so that the launcher, which ends every copy at the first one's exit, does not
  // end the first before it has said why.
  const bool first_copy = dpunet::launched_copies().count <= 1 || dpunet::launched_rank() == 0;
  const auto exit_quietly = [](int code) {
    std::this_thread::sleep_for(std::chrono::seconds(3));
    return code;
  };
  if (const std::string unknown = unknown_command(app, argc, argv); !unknown.empty()) {
    if (!first_copy) return exit_quietly(kMissingCommand);
    std::cerr << "dpunet: error: " << unknown << std::endl;
    return kMissingCommand;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (!first_copy) return exit_quietly(e.get_exit_code());
    return app.exit(e);
  } catch (const dpunet::AgreedError& e) {
    return dpunet::dist::report_agreed_error(e);
  } catch (const dpunet::Error& e) {
    return dpunet::dist::report_fatal_error(e.what());
  } catch (const c10::Error& e) {
    return dpunet::dist::report_fatal_error(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return dpunet::dist::report_fatal_error(e.what());
  }
  return exit_code;
}
