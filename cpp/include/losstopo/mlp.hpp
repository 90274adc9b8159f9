// The description of a fully connected network: layer sizes, activations, loss,
// and the flat parameter layout shared with PyTorch's parameters_to_vector.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace losstopo {

enum class Activation { Identity, ReLU, Softplus, Tanh, Sigmoid };
enum class Loss { CrossEntropy, MSE };

// Parses "relu", "softplus", ... ; throws std::invalid_argument on an unknown name.
Activation parse_activation(const std::string& name);
Loss parse_loss(const std::string& name);

// A multilayer perceptron sizes[0] -> sizes[1] -> ... -> sizes[L].
// Layer l (0-based) maps sizes[l] -> sizes[l+1]; hidden layers (l < L-1) use
// hidden[l], the last layer uses `output`. The flat parameter vector holds, per
// layer, the weight (out, in) row-major, then the bias (out) when `bias` is true.
struct MLPSpec {
  std::vector<int> sizes;
  std::vector<Activation> hidden;  // one per hidden layer, size L-1
  Activation output = Activation::Identity;
  bool bias = true;
  Loss loss = Loss::CrossEntropy;

  // Throws std::invalid_argument when the description is inconsistent.
  void validate() const;
  int num_layers() const { return static_cast<int>(sizes.size()) - 1; }
  int64_t num_params() const;
  int64_t weight_offset(int layer) const;
  int64_t bias_offset(int layer) const;  // valid when bias is true
  Activation activation(int layer) const {
    return layer == num_layers() - 1 ? output : hidden[layer];
  }
};

}  // namespace losstopo
