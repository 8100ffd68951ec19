// Making ranks agree before training: the same model everywhere (checked by a cheap
// fingerprint, explained in full only when it differs) and rank 0's values copied over.
#include <functional>
#include <map>

#include <torch/torch.h>

#include "common/error.h"
#include "common/text.h"
#include "dist/ddp.h"

namespace dpunet::dist {
namespace {

std::string join_lines(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& line : lines) text += line + "\n";
  return text;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t end; (end = text.find('\n', start)) != std::string::npos; start = end + 1) {
    lines.push_back(text.substr(start, end - start));
  }
  return lines;
}

std::string first_difference(const std::vector<std::string>& root, const std::vector<std::string>& mine) {
  for (size_t i = 0; i < root.size() || i < mine.size(); ++i) {
    const std::string theirs = i < root.size() ? root[i] : "nothing";
    const std::string ours = i < mine.size() ? mine[i] : "nothing";
    if (theirs != ours) return "entry " + std::to_string(i) + " is " + theirs + " on rank 0 but " + ours + " here";
  }
  return "none";
}

}  // namespace

void check_same_on_all_ranks(Communicator& comm, const std::vector<std::string>& lines, const std::string& what) {
  const std::string text = join_lines(lines);
  const auto fingerprint = static_cast<int64_t>(fnv1a(text));
  const std::vector<int64_t> fingerprints = comm.all_gather_values(fingerprint);
  std::string differing;
  for (int r = 1; r < comm.world_size(); ++r) {
    if (fingerprints[r] != fingerprints[0]) differing += (differing.empty() ? "" : ", ") + std::to_string(r);
  }
  if (differing.empty()) return;
  // Every rank takes part in this broadcast, then every rank throws: nobody waits alone.
  const std::string root_text = comm.broadcast_string(text, /*root=*/0);
  if (fingerprints[comm.rank()] != fingerprints[0]) {
    DPUNET_FAIL_ON_EVERY_RANK(true, "the ", what, " differs between rank ", comm.rank(),
                              " and rank 0: ", first_difference(split_lines(root_text), lines),
                              " (ranks differing from rank 0: ", differing, ")");
  }
  DPUNET_FAIL_ON_EVERY_RANK(false, "the ", what, " differs across ranks: rank(s) ", differing,
                            " differ from rank 0 (their messages name the first difference)");
}

void broadcast_coalesced(Communicator& comm, const std::vector<torch::Tensor>& tensors, int root) {
  torch::NoGradGuard no_grad;
  std::map<torch::ScalarType, std::vector<torch::Tensor>> by_type;
  for (const auto& t : tensors) {
    if (t.numel() > 0) by_type[t.scalar_type()].push_back(t);
  }
  for (auto& [type, group] : by_type) {
    std::vector<torch::Tensor> flat;
    for (const auto& t : group) flat.push_back(t.reshape({-1}));
    torch::Tensor packed = torch::cat(flat).to(comm.device());
    // Ordered on the device: the copies below queue behind the broadcast without the
    // host waiting for it (on a GPU it sits behind the step's gradient all-reduces).
    comm.broadcast_async(packed, root)->wait_on_stream();
    int64_t offset = 0;
    for (auto& t : group) {
      t.copy_(packed.narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }
}

}  // namespace dpunet::dist
