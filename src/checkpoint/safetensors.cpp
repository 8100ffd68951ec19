// safetensors reader and writer.
#include "checkpoint/safetensors.h"

#include <torch/torch.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/atomic_file.h"
#include "common/error.h"

namespace dpunet::checkpoint {
namespace {

// The format's largest header (100 MB); larger claims are damage, not headers.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

const std::vector<std::pair<std::string, torch::ScalarType>>& dtype_names() {
  static const std::vector<std::pair<std::string, torch::ScalarType>> names = {
      {"F64", torch::kDouble}, {"F32", torch::kFloat}, {"F16", torch::kHalf},  {"BF16", torch::kBFloat16},
      {"I64", torch::kLong},   {"I32", torch::kInt},   {"I16", torch::kShort}, {"I8", torch::kChar},
      {"U8", torch::kByte},    {"BOOL", torch::kBool}};
  return names;
}

std::string name_of(torch::ScalarType type) {
  for (const auto& [name, t] : dtype_names()) {
    if (t == type) return name;
  }
  DPUNET_FAIL("safetensors: no dtype for ", c10::toString(type));
}

struct Entry {
  std::string name;
  torch::ScalarType type;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

// A header value in an error message: a scalar as written and a list of numbers (a shape)
// cut to 60 characters; any other list or object by its kind alone, since dump() recurses
// once per nesting level and a crafted header nests deep enough to end the stack.
std::string shown(const nlohmann::json& value) {
  const bool flat =
      value.is_primitive() ||
      (value.is_array() && std::all_of(value.begin(), value.end(), [](const auto& item) { return item.is_number(); }));
  if (!flat) return value.is_array() ? "a nested list" : "an object";
  std::string text = value.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

Entry parse_entry(const std::string& source, const std::string& name, const nlohmann::json& value) {
  auto bad = [&](const std::string& what) { DPUNET_FAIL(source, ": tensor '", name, "': ", what); };
  if (!value.is_object() || !value.contains("dtype") || !value.contains("shape") || !value.contains("data_offsets")) {
    bad("needs dtype, shape and data_offsets");
  }
  Entry e{name, torch::kFloat, {}, 0, 0};
  const std::string dtype = value["dtype"].is_string() ? value["dtype"].get<std::string>() : "";
  const auto found =
      std::find_if(dtype_names().begin(), dtype_names().end(), [&](const auto& item) { return item.first == dtype; });
  if (found == dtype_names().end()) bad("unknown dtype " + shown(value["dtype"]));
  e.type = found->second;
  if (!value["shape"].is_array()) bad("shape must be a list");
  for (const auto& d : value["shape"]) {
    if (!d.is_number_unsigned() || d.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      bad("shape entries must be integers from 0 to 2^63-1, got " + shown(d));
    }
    e.shape.push_back(d.get<int64_t>());
  }
  const auto& offsets = value["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    bad("data_offsets must be [begin, end]");
  }
  e.begin = offsets[0].get<uint64_t>();
  e.end = offsets[1].get<uint64_t>();
  if (e.end < e.begin) bad("data_offsets end before they begin");
  // Checked products: a damaged shape must not wrap around to the span it claims, and an
  // empty tensor's other sides must still make a tensor (their product fits in int64).
  uint64_t bytes = c10::elementSize(e.type);
  for (int64_t d : e.shape) {
    if (d != 0 &&
        (__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes) || bytes > static_cast<uint64_t>(INT64_MAX))) {
      bad("shape " + shown(value["shape"]) + " holds more bytes than a file can");
    }
  }
  const bool empty = std::find(e.shape.begin(), e.shape.end(), 0) != e.shape.end();
  const uint64_t expected = empty ? 0 : bytes;
  if (e.end - e.begin != expected) {
    bad("data_offsets span " + std::to_string(e.end - e.begin) + " bytes but " + dtype + " " + shown(value["shape"]) +
        " needs " + std::to_string(expected));
  }
  return e;
}

// The header length: the file's first 8 bytes, little-endian.
uint64_t length_field(const std::string& bytes) {
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<unsigned char>(bytes[i]);
  return length;
}

// Checks the length field against the file's size from the file's first bytes (`start`,
// 9 of them where the file has as many): another kind of file, or one cut short, is said
// without reading it whole. Returns the header length.
uint64_t check_length_field(const std::string& start, uint64_t file_bytes, const std::string& source) {
  DPUNET_CHECK(file_bytes >= 8 && start.size() >= 8, source, ": too short for a safetensors file (", file_bytes,
               " bytes)");
  const uint64_t header_bytes = length_field(start);
  const bool length_fits = header_bytes <= kMaxHeaderBytes && header_bytes <= file_bytes - 8;
  // A JSON header after the length field: a safetensors file cut short, else another kind of file.
  DPUNET_CHECK(length_fits || (start.size() > 8 && start[8] == '{'), source,
               ": not a safetensors file (it does not start with a header length and a JSON header)");
  DPUNET_CHECK(length_fits, source, ": bad header length ", header_bytes, " (the file has ", file_bytes, " bytes)");
  return header_bytes;
}

// The first 9 bytes of the file at `path` (fewer when it is shorter), and its size.
std::pair<std::string, uint64_t> file_start(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  DPUNET_CHECK(in, path, ": cannot open (", std::strerror(errno), ")");
  std::error_code ec;
  const uint64_t file_bytes = std::filesystem::file_size(path, ec);
  DPUNET_CHECK(!ec, path, ": cannot read its size (", ec.message(), ")");
  std::string start(9, '\0');
  in.read(start.data(), 9);
  start.resize(static_cast<size_t>(in.gcount()));
  return {start, file_bytes};
}

// Reads the length field and parses the JSON header; returns the header length.
uint64_t parse_header(const std::string& bytes, const std::string& source, nlohmann::json* header) {
  const uint64_t header_bytes = check_length_field(bytes.substr(0, 9), bytes.size(), source);
  try {
    *header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header_bytes));
  } catch (const nlohmann::json::exception& e) {
    DPUNET_FAIL(source, ": the header is not valid JSON (", e.what(), ")");
  }
  DPUNET_CHECK(header->is_object(), source, ": the header must be a JSON object");
  return header_bytes;
}

}  // namespace

std::map<std::string, std::string> read_safetensors_metadata(const std::string& path) {
  // The length field and the header alone: the tensors may be hundreds of megabytes.
  const auto [start, file_bytes] = file_start(path);
  const uint64_t header_bytes = check_length_field(start, file_bytes, path);
  std::ifstream in(path, std::ios::binary);
  std::string head(8 + header_bytes, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  DPUNET_CHECK(in, path, ": cannot read its header (", std::strerror(errno), ")");
  nlohmann::json header;
  parse_header(head, path, &header);
  if (!header.contains("__metadata__")) return {};
  try {
    return header["__metadata__"].get<std::map<std::string, std::string>>();
  } catch (const nlohmann::json::exception&) {
    DPUNET_FAIL(path, ": __metadata__ must map strings to strings");
  }
}

NamedTensors parse_safetensors(const std::string& bytes, const std::string& source) {
  nlohmann::json header;
  const uint64_t header_bytes = parse_header(bytes, source, &header);
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") continue;
    entries.push_back(parse_entry(source, name, value));
  }
  const uint64_t data_bytes = bytes.size() - 8 - header_bytes;
  std::vector<const Entry*> by_offset;
  for (const Entry& e : entries) by_offset.push_back(&e);
  // Empty tensors first among those at one offset: they may share it with the next one.
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return std::make_pair(a->begin, a->end) < std::make_pair(b->begin, b->end);
  });
  uint64_t cursor = 0;
  for (const Entry* e : by_offset) {
    DPUNET_CHECK(e->end <= data_bytes, source, ": tensor '", e->name, "' ends at byte ", e->end, ", beyond the data (",
                 data_bytes, " bytes)");
    DPUNET_CHECK(e->begin >= cursor, source, ": tensor '", e->name, "' overlaps the tensor before it");
    DPUNET_CHECK(e->begin == cursor, source, ": a gap of ", e->begin - cursor, " bytes before tensor '", e->name, "'");
    cursor = e->end;
  }
  DPUNET_CHECK(cursor == data_bytes, source, ": ", data_bytes - cursor, " bytes after the last tensor");

  const char* data = bytes.data() + 8 + header_bytes;
  NamedTensors tensors;
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  for (const Entry& e : entries) {
    torch::Tensor t = torch::empty(e.shape, torch::TensorOptions().dtype(e.type));
    if (e.end > e.begin) std::memcpy(t.data_ptr(), data + e.begin, e.end - e.begin);  // little-endian host
    tensors.emplace_back(e.name, t);
  }
  return tensors;
}

NamedTensors read_safetensors(const std::string& path) {
  // Another kind of file (a multi-gigabyte PyTorch .pt) is said before it is read whole.
  const auto [start, file_bytes] = file_start(path);
  check_length_field(start, file_bytes, path);
  return parse_safetensors(read_file(path), path);
}

void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> cpu;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    DPUNET_CHECK(name != "__metadata__" && !header.contains(name), path, ": duplicate or reserved tensor name '", name,
                 "'");
    cpu.push_back(tensor.detach().to(torch::kCPU).contiguous());
    const uint64_t size = static_cast<uint64_t>(cpu.back().numel()) * cpu.back().element_size();
    header[name] = {{"dtype", name_of(tensor.scalar_type())},
                    {"shape", tensor.sizes().vec()},
                    {"data_offsets", {offset, offset + size}}};
    offset += size;
  }
  // The header is JSON, so UTF-8: a config naming paths in another encoding keeps them with
  // U+FFFD for the bytes that are not (the weights are what matters here).
  std::string text = header.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((static_cast<uint64_t>(text.size()) >> (8 * i)) & 0xFF);
  bytes += text;
  bytes.reserve(bytes.size() + offset);
  for (const torch::Tensor& t : cpu) bytes.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  write_file_atomically(path, bytes);
}

}  // namespace dpunet::checkpoint
