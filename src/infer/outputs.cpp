// PredictionWriter.
#include "infer/outputs.h"

#include <torch/torch.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "common/atomic_file.h"
#include "common/error.h"
#include "data/image_io.h"

namespace dpunet::infer {
namespace {

void write_dataset(hid_t group, const char* name, const torch::Tensor& t, hid_t file_type, hid_t memory_type,
                   const std::string& context) {
  std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
  data::H5Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  H5_CHECK(space.get(), context);
  data::H5Handle set(H5Dcreate2(group, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  H5_CHECK(set.get(), context);
  H5_CHECK(H5Dwrite(set.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()), context);
}

// Distinct colours for the classes; class 0 (background) stays transparent.
const uint8_t kColours[][3] = {{0, 0, 0},     {230, 25, 75},  {60, 180, 75},  {255, 225, 25},
                               {0, 130, 200}, {245, 130, 48}, {145, 30, 180}, {70, 240, 240}};
constexpr int kNamedColours = 8;

// Channel c of class k's colour: the table, then hues a golden angle apart (saturated,
// bright), so classes past the table neither repeat it nor come out black.
double class_colour(int k, int c) {
  if (k < kNamedColours) return kColours[k][c];
  const double hue = std::fmod(k * 0.6180339887, 1.0) * 6.0;  // sextant of the colour wheel
  const double f = hue - std::floor(hue);
  const double v = 230.0, low = v * 0.25, fall = v * (1 - 0.75 * f), rise = v * (1 - 0.75 * (1 - f));
  const double rgb[6][3] = {{v, rise, low}, {fall, v, low}, {low, v, rise},
                            {low, fall, v}, {rise, low, v}, {v, low, fall}};
  return rgb[static_cast<int>(hue) % 6][c];
}

const std::string& make_directory(const std::string& directory) {
  std::error_code ec;
  std::filesystem::create_directories(directory, ec);
  DPUNET_CHECK(!ec, directory, ": cannot create the output directory: ", ec.message());
  return directory;
}

}  // namespace

PredictionWriter::PredictionWriter(const OutputOptions& options, int rank, int world_size, int64_t n_classes)
    : options_(options), n_classes_(n_classes), manifest_(make_directory(options.directory), rank, world_size) {
  char name[64];
  if (world_size == 1) {
    std::snprintf(name, sizeof(name), "predictions.h5");
  } else {
    std::snprintf(name, sizeof(name), "predictions-rank%03d.h5", rank);
  }
  path_ = options.directory + "/" + name;
  temporary_ = path_ + ".partial";
  manifest_.add(name);
  manifest_.add(std::string(name) + ".partial");
  data::silence_hdf5_errors();
  auto guard = data::hdf5_guard();
  file_ = data::H5Handle(H5Fcreate(temporary_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  H5_CHECK(file_.get(), temporary_);
}

PredictionWriter::~PredictionWriter() {
  if (!file_.valid()) return;
  {
    auto guard = data::hdf5_guard();
    probabilities_.reset();  // an image stopped half way: its rows had no name, and go
    file_.reset();           // closed whole: every image written so far reads back
  }
  // Stopped by an error: hours of predictions made before it stay, under the name that
  // says they are not all (a rerun refuses to write over them without --overwrite).
  if (written_ == 0) {
    std::remove(temporary_.c_str());
  } else {
    std::cerr << "predict: the " << written_ << " image(s) predicted before the error are kept in " << temporary_
              << " (move it away before a rerun with --overwrite, which removes it)" << std::endl;
  }
}

void PredictionWriter::start(const std::string& name, int64_t height, int64_t width) {
  DPUNET_CHECK(current_.empty(), "predict: image ", name, " begun before ", current_, " was written");
  current_ = name;
  height_ = height;
  width_ = width;
  probability_rows_ = 0;
  if (!options_.probabilities) return;
  auto guard = data::hdf5_guard();
  data::silence_hdf5_errors();
  const hsize_t dims[3] = {static_cast<hsize_t>(n_classes_), static_cast<hsize_t>(height), static_cast<hsize_t>(width)};
  data::H5Handle space(H5Screate_simple(3, dims, nullptr));
  H5_CHECK(space.get(), temporary_ + ": " + name);
  probabilities_ = data::H5Handle(H5Dcreate_anon(file_.get(), H5T_IEEE_F32LE, space.get(), H5P_DEFAULT, H5P_DEFAULT));
  H5_CHECK(probabilities_.get(), temporary_ + ": " + name + "/probabilities");
}

void PredictionWriter::write_probabilities(int64_t row, const torch::Tensor& rows) {
  if (!options_.probabilities) return;
  DPUNET_CHECK(probabilities_.valid() && row == probability_rows_ && rows.dim() == 3 && rows.size(0) == n_classes_ &&
                   rows.size(2) == width_ && row + rows.size(1) <= height_,
               "predict: probabilities rows ", row, " ", rows.sizes(), " do not follow on in ", current_, " (",
               probability_rows_, " of ", height_, " rows written, width ", width_, ")");
  const torch::Tensor p = rows.to(torch::kCPU).to(torch::kFloat).contiguous();
  const std::string context = temporary_ + ": " + current_ + "/probabilities";
  auto guard = data::hdf5_guard();
  data::silence_hdf5_errors();
  const hsize_t start[3] = {0, static_cast<hsize_t>(row), 0};
  const hsize_t count[3] = {static_cast<hsize_t>(p.size(0)), static_cast<hsize_t>(p.size(1)),
                            static_cast<hsize_t>(p.size(2))};
  data::H5Handle file_space(H5Dget_space(probabilities_.get()));
  H5_CHECK(file_space.get(), context);
  H5_CHECK(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr), context);
  data::H5Handle memory_space(H5Screate_simple(3, count, nullptr));
  H5_CHECK(memory_space.get(), context);
  H5_CHECK(
      H5Dwrite(probabilities_.get(), H5T_NATIVE_FLOAT, memory_space.get(), file_space.get(), H5P_DEFAULT, p.data_ptr()),
      context);
  probability_rows_ += p.size(1);
}

void PredictionWriter::write(const std::string& name, const torch::Tensor& labels, const torch::Tensor& raw) {
  DPUNET_CHECK(name == current_ && labels.dim() == 2 && labels.size(0) == height_ && labels.size(1) == width_,
               "predict: the mask of ", name, " (", labels.sizes(), ") is not of the image begun (", current_, ", ",
               height_, "x", width_, ")");
  DPUNET_CHECK(!options_.probabilities || probability_rows_ == height_, "predict: ", name, ": only ", probability_rows_,
               " of ", height_, " rows of probabilities were written");
  const torch::Tensor mask = labels.contiguous();
  {
    auto guard = data::hdf5_guard();
    data::silence_hdf5_errors();
    // The image's group is named last, once all it holds is written: a write that fails
    // (a full disk) leaves nothing a reader would take for a prediction.
    data::H5Handle group(H5Gcreate_anon(file_.get(), H5P_DEFAULT, H5P_DEFAULT));
    H5_CHECK(group.get(), temporary_ + ": " + name);
    write_dataset(group.get(), "mask", mask, H5T_STD_U8LE, H5T_NATIVE_UINT8, temporary_ + ": " + name + "/mask");
    if (options_.probabilities) {
      H5_CHECK(H5Olink(probabilities_.get(), group.get(), "probabilities", H5P_DEFAULT, H5P_DEFAULT),
               temporary_ + ": " + name + "/probabilities");
      probabilities_.reset();
    }
    H5_CHECK(H5Olink(group.get(), file_.get(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT), temporary_ + ": " + name);
    // On disk whole before the next image: a rank killed later (another rank's error
    // aborts the job; the OOM killer) leaves a file that reads back up to here.
    H5_CHECK(H5Fflush(file_.get(), H5F_SCOPE_LOCAL), temporary_);
  }
  current_.clear();
  ++written_;
  if (!options_.png) return;
  const int64_t height = mask.size(0), width = mask.size(1);
  manifest_.add(name + "_mask.png");
  manifest_.add(name + "_overlay.png");
  data::write_png8(options_.directory + "/" + name + "_mask.png", height, width, 1, mask.data_ptr<uint8_t>());
  manifest_.written(name + "_mask.png");

  // Overlay: the first channel in grey, classes blended in colour at 45%. Made a row at a
  // time as it is written: a slide's overlay would be 3 bytes a pixel.
  const torch::Tensor grey = raw[0].to(torch::kCPU).contiguous();
  static const auto palette = [] {
    std::array<std::array<double, 3>, 256> colours{};
    for (int k = 0; k < 256; ++k)
      for (int c = 0; c < 3; ++c) colours[k][c] = class_colour(k, c);
    return colours;
  }();
  const uint8_t* g = grey.data_ptr<uint8_t>();
  const uint8_t* m = mask.data_ptr<uint8_t>();
  data::write_png8_rows(options_.directory + "/" + name + "_overlay.png", height, width, 3,
                        [&](int64_t y, uint8_t* row) {
                          for (int64_t x = 0; x < width; ++x) {
                            const int64_t i = y * width + x;
                            for (int c = 0; c < 3; ++c) {
                              const double base = g[i];
                              const double colour = palette[m[i]][c];
                              row[x * 3 + c] = static_cast<uint8_t>(m[i] == 0 ? base : 0.55 * base + 0.45 * colour);
                            }
                          }
                        });
  manifest_.written(name + "_overlay.png");
}

void PredictionWriter::finish() {
  DPUNET_CHECK(current_.empty(), "predict: image ", current_, " was begun and never written");
  {
    auto guard = data::hdf5_guard();
    H5_CHECK(H5Fflush(file_.get(), H5F_SCOPE_GLOBAL), temporary_);
    file_.reset();
  }
  // HDF5 writes without syncing: the bytes reach the disk before the name does.
  sync_file(temporary_);
  DPUNET_CHECK(std::rename(temporary_.c_str(), path_.c_str()) == 0, "cannot rename ", temporary_, " to ", path_);
  const std::filesystem::path folder = std::filesystem::path(path_).parent_path();
  sync_directory(folder.empty() ? "." : folder.string());
  manifest_.written(std::filesystem::path(path_).filename().string());
}

}  // namespace dpunet::infer
