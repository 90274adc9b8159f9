#include "losstopo/mlp.hpp"

#include <stdexcept>

namespace losstopo {

Activation parse_activation(const std::string& name) {
  if (name == "identity") return Activation::Identity;
  if (name == "relu") return Activation::ReLU;
  if (name == "softplus") return Activation::Softplus;
  if (name == "tanh") return Activation::Tanh;
  if (name == "sigmoid") return Activation::Sigmoid;
  throw std::invalid_argument("unknown activation '" + name +
                              "' (expected identity, relu, softplus, tanh or sigmoid)");
}

Loss parse_loss(const std::string& name) {
  if (name == "cross_entropy") return Loss::CrossEntropy;
  if (name == "mse") return Loss::MSE;
  throw std::invalid_argument("unknown loss '" + name + "' (expected cross_entropy or mse)");
}

void MLPSpec::validate() const {
  if (sizes.size() < 2) throw std::invalid_argument("sizes: need at least an input and an output size");
  for (int s : sizes)
    if (s <= 0) throw std::invalid_argument("sizes: every layer size must be positive");
  if (static_cast<int>(hidden.size()) != num_layers() - 1)
    throw std::invalid_argument("hidden: need one activation per hidden layer");
  if (output != Activation::Identity && output != Activation::Sigmoid)
    throw std::invalid_argument("output: expected identity or sigmoid");
  if (loss == Loss::CrossEntropy && sizes.back() < 2)
    throw std::invalid_argument("cross_entropy needs at least two outputs");
}

int64_t MLPSpec::weight_offset(int layer) const {
  int64_t off = 0;
  for (int l = 0; l < layer; ++l)
    off += int64_t(sizes[l]) * sizes[l + 1] + (bias ? sizes[l + 1] : 0);
  return off;
}

int64_t MLPSpec::bias_offset(int layer) const {
  return weight_offset(layer) + int64_t(sizes[layer]) * sizes[layer + 1];
}

int64_t MLPSpec::num_params() const { return weight_offset(num_layers()); }

}  // namespace losstopo
