// Catmull-Rom (cubic convolution, a = -0.5) interpolation weights, shared by the elastic
// displacement field and low-resolution simulation.
#pragma once

namespace dpunet::data {

// Weights of the four nodes around fraction t in [0, 1) between the second and third.
inline void cubic_weights(double t, double w[4]) {
  const double t2 = t * t, t3 = t2 * t;
  w[0] = 0.5 * (-t3 + 2 * t2 - t);
  w[1] = 0.5 * (3 * t3 - 5 * t2 + 2);
  w[2] = 0.5 * (-3 * t3 + 4 * t2 + t);
  w[3] = 0.5 * (t3 - t2);
}

}  // namespace dpunet::data
