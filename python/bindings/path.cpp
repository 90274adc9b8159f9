// Bindings of the Fourier path finder.
#include <optional>

#include "common.hpp"
#include "losstopo/path.hpp"

using namespace losstopo_py;

namespace {

template <typename T>
void bind_path(py::module_& m, const char* name) {
  using PB = PathBatch<T>;
  py::class_<PB>(m, name)
      .def(py::init([](py::object fun, carray<T> A, carray<T> B, const PathParams& params) {
             if (A.ndim() != 2 || B.ndim() != 2 || A.shape(0) != B.shape(0) ||
                 A.shape(1) != B.shape(1) || A.shape(0) < 1)
               throw std::invalid_argument("a, b: expected two arrays of shape (R, D)");
             const int64_t R = A.shape(0), D = A.shape(1);
             // A compiled objective brings its capabilities (combinations); anything
             // else is called back with the GIL.
             if (const Objective<T>* obj = native_objective<T>(fun)) {
               if (obj->num_params() != D)
                 throw std::invalid_argument("a, b: length differs from the landscape's");
               py::gil_scoped_release release;
               return new PB(*obj, R, A.data(), B.data(), params);
             }
             BatchFunction<T> f = make_function<T>(fun, D);
             py::gil_scoped_release release;
             return new PB(std::move(f), D, R, A.data(), B.data(), params);
           }),
           py::keep_alive<1, 2>(), py::arg("fun"), py::arg("a"), py::arg("b"),
           py::arg("params"))
      .def(
          "optimize",
          [](PB& self, py::object callback) {
            std::function<bool(int)> cb = step_callback(callback);
            py::gil_scoped_release release;
            self.optimize(cb);
          },
          py::arg("callback") = py::none())
      .def(
          "measure",
          [](const PB& self, carray<T> C, std::vector<int64_t> rows, bool refine, int factor,
             int rounds, int per_round) {
            const int64_t n = rows.empty() ? self.size() : int64_t(rows.size());
            if (C.size() != n * self.n_modes() * self.dim())
              throw std::invalid_argument("coeffs: expected shape (R, n_modes, D)");
            PathMeasures m;
            {
              py::gil_scoped_release release;
              m = self.measure(C.data(), rows, refine, factor, rounds, per_round);
            }
            const int64_t M = self.n_points();
            py::dict d;
            d["energies"] = to_array(m.energies, {n, M});
            d["errors"] = m.errors.empty() ? py::object(py::none())
                                           : py::object(to_array(m.errors, {n, M}));
            d["straight"] = to_array(m.straight, {n, M});
            d["t_max"] = to_array(m.t_max, {n});
            d["e_max"] = to_array(m.e_max, {n});
            d["straight_t_max"] = to_array(m.straight_t_max, {n});
            d["straight_e_max"] = to_array(m.straight_e_max, {n});
            d["calls"] = m.calls;
            return d;
          },
          py::arg("coeffs"), py::arg("rows") = std::vector<int64_t>{}, py::arg("refine") = true,
          py::arg("factor") = 10, py::arg("rounds") = 3, py::arg("per_round") = 32,
          "Energies on the grid (and errors for a classifier), the straight line, and the "
          "refined maxima of both: a grid `factor` times finer, then `rounds` rounds of "
          "`per_round` points around the highest point; at most 2 + rounds engine calls "
          "per path.")
      .def(
          "points",
          [](const PB& self, carray<T> C, carray<double> t, std::vector<int64_t> rows) {
            const int64_t n = rows.empty() ? self.size() : int64_t(rows.size());
            for (int64_t r : rows)
              if (r < 0 || r >= self.size()) throw std::invalid_argument("rows: out of range");
            if (C.size() != n * self.n_modes() * self.dim())
              throw std::invalid_argument("coeffs: expected shape (R, n_modes, D)");
            if (t.ndim() != 1) throw std::invalid_argument("t: expected a 1-D array");
            carray<T> W({n, int64_t(t.shape(0)), self.dim()});
            const T* cp = C.data();
            const double* tp = t.data();
            T* wp = W.mutable_data();
            const int64_t nt = t.shape(0);
            {
              py::gil_scoped_release release;
              self.points(cp, tp, nt, wp, rows);
            }
            return W;
          },
          py::arg("coeffs"), py::arg("t"), py::arg("rows") = std::vector<int64_t>{})
      .def(
          "objective",
          [](PB& self, carray<T> C, std::vector<int64_t> rows, bool grad,
             std::optional<carray<int64_t>> samples) {
            const int64_t n = rows.empty() ? self.size() : int64_t(rows.size());
            for (int64_t r : rows)
              if (r < 0 || r >= self.size()) throw std::invalid_argument("rows: out of range");
            if (C.size() != n * self.n_modes() * self.dim())
              throw std::invalid_argument("coeffs: expected shape (R, n_modes, D)");
            carray<T> value(n), energies({n, int64_t(self.n_points())});
            py::object g = py::none();
            T* gp = nullptr;
            if (grad) {
              carray<T> ga({n, int64_t(self.n_modes()), self.dim()});
              gp = ga.mutable_data();
              g = ga;
            }
            const T* cp = C.data();
            T* vp = value.mutable_data();
            T* ep = energies.mutable_data();
            const int64_t* sp = samples ? samples->data() : nullptr;
            const int64_t ns = samples ? samples->size() : 0;
            {
              py::gil_scoped_release release;
              self.objective(cp, rows, vp, gp, ep, sp, ns);
            }
            return py::make_tuple(value, g, energies);
          },
          py::arg("coeffs"), py::arg("rows") = std::vector<int64_t>{}, py::arg("grad") = true,
          py::arg("samples") = py::none(),
          "Objective (value, gradient, energies) of the paths `rows`, on all samples or on "
          "the given sample indices.")
      .def(
          "step_samples",
          [](const PB& self, int step) {
            std::vector<int64_t> s = self.step_samples(step);
            return to_array(s, {int64_t(s.size())});
          },
          py::arg("step"), "The sample indices of stochastic step `step` (batch_size, sorted).")
      .def("use_generic_evaluation", &PB::use_generic_evaluation,
           "Evaluates every path point in full, without the objective's combinations.")
      .def_property_readonly("uses_combinations", &PB::uses_combinations)
      .def_property_readonly("params", &PB::params, "The batch's settings (a copy).")
      .def_property_readonly("temperatures",
                             [](const PB& s) { return to_array(s.temperatures(), {s.size()}); })
      .def(
          "set_coeffs",
          [](PB& self, anyarray<T> C) {
            if (size_t(C.size()) != self.coeffs.size())
              throw std::invalid_argument("coeffs: expected shape (R, n_modes, D)");
            std::memcpy(self.coeffs.data(), C.data(), sizeof(T) * self.coeffs.size());
          },
          py::arg("coeffs"))
      .def_property_readonly("coeffs",
                             [](const PB& s) {
                               return to_array(s.coeffs, {s.size(), s.n_modes(), s.dim()});
                             })
      .def_property_readonly("best_coeffs",
                             [](const PB& s) {
                               return to_array(s.best_coeffs, {s.size(), s.n_modes(), s.dim()});
                             })
      .def_property_readonly("best_sum", [](const PB& s) { return to_array(s.best_sum, {s.size()}); })
      .def_property_readonly("history",
                             [](const PB& s) {
                               return to_array(s.history, {s.size(), s.params().steps + 1});
                             })
      .def_property_readonly("end_energy",
                             [](const PB& s) { return to_array(s.end_energy, {s.size(), 2}); })
      .def_property_readonly("t", [](const PB& s) { return to_array(s.t(), {s.n_points()}); })
      .def_property_readonly("endpoints",
                             [](const PB& s) {
                               return py::make_tuple(to_array(s.starts(), {s.size(), s.dim()}),
                                                     to_array(s.ends(), {s.size(), s.dim()}));
                             })
      .def_readonly("energy_points", &PB::energy_points)
      .def_readonly("steps_done", &PB::steps_done);
}

}  // namespace

void bind_path(py::module_& m) {
  bind_path<float>(m, "PathBatchF32");
  bind_path<double>(m, "PathBatchF64");
}
