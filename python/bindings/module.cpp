// pybind11 bindings of the C++ core (the module losstopo._core): the Objective base
// class that every engine's class derives from (the CUDA module registers its own
// subclass), the CPU Landscape, the settings structs, and the optimizer and path
// bindings of optim.cpp and path.cpp. Argument checks that guard memory safety live
// here; the rules of the settings live in their C++ validate().
#include <optional>

#include "common.hpp"
#include "losstopo/landscape.hpp"

using namespace losstopo_py;

namespace {

template <typename T>
void bind_objective(py::module_& m) {
  using OB = Objective<T>;
  py::class_<OB>(m, class_name<T>("Objective").c_str(),
                 "A batched objective of the compiled core (any engine).")
      .def_property_readonly("num_params", &OB::num_params)
      .def_property_readonly("num_samples", &OB::num_samples)
      .def_property_readonly("classifier", &OB::classifier)
      .def_property_readonly("offers_lines",
                             [](const OB& self) { return bool(self.line_evaluator()); })
      .def_property_readonly("offers_combinations", &OB::offers_combinations)
      .def("evaluate", &objective_evaluate<T>, py::arg("theta"), py::arg("grad") = false,
           py::arg("accuracy") = false, py::arg("samples") = py::none())
      .def("evaluate_each", &objective_evaluate_each<T>, py::arg("theta"), py::arg("samples"),
           py::arg("grad") = true)
      .def(
          "line_values",
          [](const OB& self, carray<T> x, carray<T> d, carray<int64_t> lines, carray<T> u,
             bool grad) -> py::object {
            const int64_t D = self.num_params();
            if (x.ndim() != 2 || x.shape(1) != D || d.ndim() != 2 || d.shape(0) != x.shape(0) ||
                d.shape(1) != D)
              throw std::invalid_argument("x, d: expected two arrays of shape (P, D)");
            if (lines.ndim() != 1 || u.ndim() != 1 || lines.shape(0) != u.shape(0))
              throw std::invalid_argument("lines, u: expected two 1-D arrays of one length");
            for (int64_t k = 0; k < lines.shape(0); ++k)
              if (lines.data()[k] < 0 || lines.data()[k] >= x.shape(0))
                throw std::invalid_argument("lines: index outside the prepared lines");
            auto ev = self.line_evaluator();
            if (!ev) throw std::invalid_argument("lines: not offered by this objective");
            const int64_t n = u.shape(0);
            carray<T> out(n);
            carray<T> g(std::vector<py::ssize_t>{grad ? n : 0, D});
            bool ok, accepted = true;
            {
              py::gil_scoped_release release;
              ok = ev->prepare(x.data(), d.data(), x.shape(0));
              if (ok && grad)
                accepted = ev->accept(lines.data(), u.data(), n, out.mutable_data(),
                                      g.mutable_data());
              else if (ok)
                ev->values(lines.data(), u.data(), n, out.mutable_data());
            }
            if (!ok) throw std::invalid_argument("lines: the products exceed the line cache budget");
            if (!accepted) throw std::invalid_argument("lines: no gradients from this objective's lines");
            if (grad) return py::make_tuple(out, g);
            return out;
          },
          py::arg("x"), py::arg("d"), py::arg("lines"), py::arg("u"), py::arg("grad") = false,
          "Losses (and with grad, gradients) at x[l] - u d[l] through the prepared-lines "
          "capability.")
      .def_property_readonly("offers_hessian_vector", &OB::offers_hessian_vector)
      .def(
          "hessian_vector",
          [](const OB& self, carray<T> theta, carray<T> v, bool grad,
             std::optional<carray<int64_t>> samples) {
            check_theta(self, theta);
            const int64_t D = self.num_params(), Pt = theta.shape(0);
            if (v.ndim() != 2 || v.shape(1) != D || v.shape(0) < 1)
              throw std::invalid_argument("v: expected shape (P, " + std::to_string(D) + ")");
            const int64_t P = v.shape(0);
            if (Pt != 1 && Pt != P)
              throw std::invalid_argument("theta: expected 1 or " + std::to_string(P) +
                                          " rows (one per direction), got " +
                                          std::to_string(Pt));
            if (samples && samples->ndim() != 1)
              throw std::invalid_argument("samples: expected a 1-D index array");
            if (!self.offers_hessian_vector())
              throw std::invalid_argument("hessian_vector: not offered by this objective");
            carray<T> hv({P, D}), loss(Pt);
            carray<T> g(std::vector<py::ssize_t>{grad ? Pt : 0, D});
            {
              py::gil_scoped_release release;
              self.hessian_vector(theta.data(), Pt, v.data(), P, hv.mutable_data(),
                                  loss.mutable_data(), grad ? g.mutable_data() : nullptr,
                                  samples ? samples->data() : nullptr,
                                  samples ? samples->shape(0) : 0);
            }
            return py::make_tuple(loss, grad ? py::object(g) : py::object(py::none()), hv);
          },
          py::arg("theta"), py::arg("v"), py::arg("grad") = false,
          py::arg("samples") = py::none(),
          "Exact Hessian-vector products: (loss (Pt), grad (Pt, D) or None, hv (P, D)) with "
          "hv[p] = H(theta[q]) v[p], theta (Pt, D) with Pt = 1 or P.")
      .def(
          "evaluate_combination",
          [](const OB& self, carray<T> V, carray<int32_t> index, carray<T> coef,
             std::optional<carray<int64_t>> samples, bool accuracy) -> py::object {
            const int64_t D = self.num_params();
            if (V.ndim() != 2 || V.shape(1) != D || V.shape(0) < 1)
              throw std::invalid_argument("V: expected shape (Q, D)");
            if (index.ndim() != 2 || coef.ndim() != 2 || index.shape(0) != coef.shape(0) ||
                index.shape(1) != coef.shape(1) || index.shape(0) < 1 || index.shape(1) < 1)
              throw std::invalid_argument("index, coef: expected two arrays of shape (P, nnz)");
            if (!self.offers_combinations())
              throw std::invalid_argument("combinations: not offered by this objective");
            if (accuracy && !self.classifier())
              throw std::invalid_argument("accuracy needs a cross_entropy network");
            const int64_t P = index.shape(0), Q = V.shape(0);
            const int nnz = int(index.shape(1));
            for (int64_t i = 0; i < P * nnz; ++i)
              if (index.data()[i] < 0 || index.data()[i] >= Q)
                throw std::invalid_argument("index: outside the basis");
            std::vector<T> W(size_t(P) * D, T(0));
            for (int64_t p = 0; p < P; ++p)
              for (int k = 0; k < nnz; ++k) {
                const T c = coef.data()[p * nnz + k];
                const T* v = V.data() + int64_t(index.data()[p * nnz + k]) * D;
                for (int64_t i = 0; i < D; ++i) W[p * D + i] += c * v[i];
              }
            carray<T> out(P), acc(accuracy ? P : 0);
            {
              py::gil_scoped_release release;
              self.evaluate_combination(W.data(), P, V.data(), Q, index.data(), coef.data(), nnz,
                                        out.mutable_data(), nullptr, 0, nullptr,
                                        samples ? samples->data() : nullptr,
                                        samples ? samples->size() : 0,
                                        accuracy ? acc.mutable_data() : nullptr);
            }
            if (accuracy) return py::make_tuple(out, acc);
            return std::move(out);
          },
          py::arg("V"), py::arg("index"), py::arg("coef"), py::arg("samples") = py::none(),
          py::arg("accuracy") = false,
          "Losses (and with accuracy, accuracies) at the points sum_k coef[p, k] "
          "V[index[p, k]] through the combinations capability.")
      .def(
          "hold_basis",
          [](const OB& self, carray<T> V) {
            if (V.ndim() != 2 || V.shape(1) != self.num_params() || V.shape(0) < 1)
              throw std::invalid_argument("V: expected shape (Q, D)");
            py::gil_scoped_release release;
            self.hold_basis(V.data(), V.shape(0));
          },
          py::arg("V"),
          "Hint: the rows of V will be basis vectors of evaluate_combination until "
          "release_basis(V); the engine may keep their first-layer products.")
      .def(
          "release_basis",
          [](const OB& self, carray<T> V) {
            if (V.ndim() != 2 || V.shape(1) != self.num_params() || V.shape(0) < 1)
              throw std::invalid_argument("V: expected shape (Q, D)");
            self.release_basis(V.data(), V.shape(0));
          },
          py::arg("V"), "Ends one hold_basis of the rows of V.");
}

InputProducts parse_input_products(const std::string& how) {
  if (how == "auto") return InputProducts::Auto;
  if (how == "dense") return InputProducts::Dense;
  if (how == "sparse") return InputProducts::Sparse;
  throw std::invalid_argument("input_products: expected 'auto', 'dense' or 'sparse', got '" +
                              how + "'");
}

std::string input_products_name(InputProducts how) {
  switch (how) {
    case InputProducts::Dense: return "dense";
    case InputProducts::Sparse: return "sparse";
    default: return "auto";
  }
}

template <typename T>
void bind_landscape(py::module_& m) {
  using LS = Landscape<T>;
  py::class_<LS, Objective<T>>(m, class_name<T>("Landscape").c_str())
      .def(py::init([](const std::vector<int>& sizes, const std::vector<std::string>& hidden,
                       const std::string& output, bool bias, const std::string& loss,
                       carray<T> X, std::optional<carray<int32_t>> y,
                       std::optional<carray<T>> targets, int threads, int64_t chunk,
                       const std::string& input_products, bool drop_zero_columns) {
             MLPSpec s = make_spec(sizes, hidden, output, bias, loss);
             check_data_shapes<T>(s, X, y, targets);
             EngineOptions opt;
             opt.threads = threads;
             opt.chunk = chunk;
             opt.input_products = parse_input_products(input_products);
             opt.drop_zero_columns = drop_zero_columns;
             return new LS(std::move(s), X.data(), X.shape(0), y ? y->data() : nullptr,
                           targets ? targets->data() : nullptr, opt);
           }),
           py::arg("sizes"), py::arg("hidden"), py::arg("output"), py::arg("bias"),
           py::arg("loss"), py::arg("X"), py::arg("y") = py::none(),
           py::arg("targets") = py::none(), py::arg("threads") = 0, py::arg("chunk") = 0,
           py::arg("input_products") = "auto", py::arg("drop_zero_columns") = true)
      .def_property(
          "threads", [](const LS& self) { return self.options().threads; },
          [](LS& self, int t) {
            EngineOptions o = self.options();
            o.threads = t;
            self.set_options(o);
          })
      .def_property_readonly("held_basis", &LS::held_basis,
                             "How many basis vectors' first-layer products are held.")
      .def_property(
          "line_cache_bytes", [](const LS& self) { return self.options().line_cache_bytes; },
          [](LS& self, int64_t b) {
            EngineOptions o = self.options();
            o.line_cache_bytes = b;
            self.set_options(o);
          },
          "Memory the engine may keep per prepared lines, kept point and held basis "
          "vectors (bytes).")
      .def_property(
          "chunk", [](const LS& self) { return self.options().chunk; },
          [](LS& self, int64_t c) {
            EngineOptions o = self.options();
            o.chunk = c;
            self.set_options(o);
          })
      .def_property(
          "input_products",
          [](const LS& self) { return input_products_name(self.options().input_products); },
          [](LS& self, const std::string& how) {
            EngineOptions o = self.options();
            o.input_products = parse_input_products(how);
            self.set_options(o);
          },
          "How the first layer's products with the inputs are formed: 'auto' (sparse "
          "below the panel density SPARSE_INPUTS_BELOW), 'dense' or 'sparse'.")
      .def_property_readonly("input_density", &LS::input_density,
                             "The fraction of nonzero inputs.")
      .def_property_readonly("panel_density", &LS::panel_density,
                             "The fraction of the inputs the sparse products read (rows in "
                             "groups of four over the columns where any is nonzero).")
      .def_property_readonly("sparse_inputs", &LS::sparse_inputs,
                             "Whether the passes form the first layer's products from the "
                             "inputs' nonzeros (the choice input_products made).")
      .def_property_readonly("kept_columns", &LS::kept_columns,
                             "The input columns the passes read: all but those zero in every "
                             "sample (unless made with drop_zero_columns=False).")
      .def_property_readonly(
          "drop_zero_columns", [](const LS& self) { return self.options().drop_zero_columns; })
      .def("chunk_size", &LS::chunk_size, py::arg("P"))
      .def(
          "dataset",
          [](const LS& self) {
            const int64_t n = self.num_samples();
            const int64_t d_out = self.spec().sizes.back();
            py::object y = py::none(), t = py::none();
            if (!self.labels().empty()) y = to_array(self.labels(), {n});
            if (!self.targets().empty()) t = to_array(self.targets(), {n, d_out});
            return py::make_tuple(to_array(self.inputs(), {n, int64_t(self.input_size())}), y,
                                  t);
          },
          "Copies of the data: (X, labels or None, targets or None).");
}

}  // namespace

void bind_settings(py::module_& m);
void bind_optim(py::module_& m);
void bind_path(py::module_& m);

PYBIND11_MODULE(_core, m) {
  m.doc() = "losstopo compiled core";
  bind_settings(m);
  bind_objective<float>(m);
  bind_objective<double>(m);
  bind_landscape<float>(m);
  bind_landscape<double>(m);
  bind_optim(m);
  bind_path(m);
  m.attr("MAX_THREADS") = EngineOptions::kMaxThreads;
  m.attr("SPARSE_INPUTS_BELOW") = EngineOptions::kSparseBelow;
  m.def(
      "cpu_arithmetic",
      [] {
        const Arithmetic a = cpu_arithmetic();
        py::dict d;
        d["instruction_set"] = a.instruction_set;
        d["blas_kernels"] = a.blas_kernels;
        return d;
      },
      "The instruction set and BLAS kernels the CPU engine computes with (its rounding "
      "depends on them and on the thread count).");
  m.def(
      "num_params",
      [](const std::vector<int>& sizes, bool bias) {
        MLPSpec s;
        s.sizes = sizes;
        s.hidden.assign(sizes.size() > 1 ? sizes.size() - 2 : 0, Activation::Identity);
        s.bias = bias;
        s.loss = Loss::MSE;
        s.validate();
        return s.num_params();
      },
      py::arg("sizes"), py::arg("bias"));
}
