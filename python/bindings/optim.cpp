// Bindings of the optimizers: batched L-BFGS over Python callables or native
// landscapes, the line searches on 1-D functions, SGD orders and the trainer.
#include "common.hpp"
#include "losstopo/lbfgs.hpp"
#include "losstopo/line_search.hpp"
#include "losstopo/sgd.hpp"
#include "losstopo/train.hpp"

using namespace losstopo_py;

namespace {

template <typename T>
py::dict minimize_lbfgs(py::object fun, carray<T> x0, const LBFGSParams& params,
                        py::object callback) {
  if (x0.ndim() != 2 || x0.shape(0) < 1 || x0.shape(1) < 1)
    throw std::invalid_argument("x0: expected shape (R, D)");
  const int64_t R = x0.shape(0), D = x0.shape(1);
  const Objective<T>* obj = native_objective<T>(fun);
  if (obj && obj->num_params() != D)
    throw std::invalid_argument("x0: length differs from the landscape's");
  // A compiled objective drives the optimizer with its own capabilities; anything
  // else is called back with the GIL.
  BatchLBFGS<T> opt = obj ? BatchLBFGS<T>(*obj, params)
                          : BatchLBFGS<T>(make_function<T>(fun, D), D, params);
  {
    py::gil_scoped_release release;
    opt.start(x0.data(), R);
    while (opt.running() > 0) {
      opt.iterate();
      if (callback.is_none()) continue;
      py::gil_scoped_acquire gil;
      carray<T> xk({R, D});
      for (int64_t r = 0; r < R; ++r)
        std::memcpy(xk.mutable_data() + r * D, opt.problem(r).x.data(), sizeof(T) * D);
      if (py::bool_(callback(xk))) {  // a true return stops every problem
        for (int64_t r = 0; r < R; ++r)
          if (opt.problem(r).status == Status::Running) opt.stop(r, Status::Stopped);
        break;
      }
    }
  }
  carray<T> x({R, D}), jac({R, D});
  carray<T> f(R);
  carray<int32_t> nit(R), nfev(R), njev(R), status(R);
  py::list messages;
  for (int64_t r = 0; r < R; ++r) {
    const Problem<T>& q = opt.problem(r);
    std::memcpy(x.mutable_data() + r * D, q.x.data(), sizeof(T) * D);
    std::memcpy(jac.mutable_data() + r * D, q.g.data(), sizeof(T) * D);
    f.mutable_data()[r] = q.f;
    nit.mutable_data()[r] = q.nit;
    nfev.mutable_data()[r] = q.nfev;
    njev.mutable_data()[r] = q.njev;
    status.mutable_data()[r] = int32_t(q.status);
    messages.append(status_message(q.status));
  }
  py::dict out;
  out["x"] = x;
  out["fun"] = f;
  out["jac"] = jac;
  out["nit"] = nit;
  out["nfev"] = nfev;
  out["njev"] = njev;
  out["status"] = status;
  out["message"] = messages;
  return out;
}

// Runs one line search on phi(u) -> (value, slope); returns (step, value, trials).
py::tuple line_search_1d(py::object phi, double f0, double slope0, double scale,
                         const LBFGSParams& p) {
  p.validate();
  std::unique_ptr<LineSearch<double>> ls;
  if (p.line_search == LineSearchKind::Golden)
    ls = std::make_unique<GoldenSectionSearch<double>>(p.golden);
  else
    ls = std::make_unique<StrongWolfeSearch<double>>(p.wolfe);
  ls->start(f0, slope0, scale);
  py::list trials;
  while (!ls->done()) {
    const double u = ls->trial();
    py::tuple r = phi(u).cast<py::tuple>();
    ls->report(r[0].cast<double>(), r[1].cast<double>());
    trials.append(u);
  }
  return py::make_tuple(ls->step(), ls->value(), trials);
}

template <typename T>
py::array_t<T> rows(const std::vector<T>& v, int64_t R) {
  const int64_t cols = R ? int64_t(v.size()) / R : 0;
  carray<T> a({R, cols});
  if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), sizeof(T) * v.size());
  return a;
}

template <typename T>
void set_rows(std::vector<T>& v, py::handle obj, const char* name) {
  copy_from(obj, v.data(), int64_t(v.size()), std::string("checkpoint: array '") + name + "'");
}

// An objective implemented in Python (e.g. losstopo.TorchLandscape): methods
// loss(theta, samples), loss_and_grad(theta, samples), accuracy(theta, samples),
// evaluate_each(theta, samples), attributes num_params, num_samples, classifier.
template <typename T>
class PyObjective final : public Objective<T> {
 public:
  explicit PyObjective(py::object obj)
      : obj_(obj),
        D_(obj.attr("num_params").cast<int64_t>()),
        n_(obj.attr("num_samples").cast<int64_t>()),
        cls_(obj.attr("classifier").cast<bool>()) {}
  int64_t num_params() const override { return D_; }
  int64_t num_samples() const override { return n_; }
  bool classifier() const override { return cls_; }
  void evaluate(const T* theta, int64_t P, T* loss, T* grad, T* acc, const int64_t* samples,
                int64_t ns) const override {
    py::gil_scoped_acquire gil;
    carray<T> th({P, D_});
    std::memcpy(th.mutable_data(), theta, sizeof(T) * P * D_);
    py::object s = py::none();
    if (samples) {
      carray<int64_t> sa(ns);
      std::memcpy(sa.mutable_data(), samples, sizeof(int64_t) * ns);
      s = sa;
    }
    if (grad) {
      py::tuple r = obj_->attr("loss_and_grad")(th, s).template cast<py::tuple>();
      copy_out(r[0], loss, P, "loss");
      copy_out(r[1], grad, P * D_, "grad");
    } else {
      copy_out(obj_->attr("loss")(th, s), loss, P, "loss");
    }
    if (acc) copy_out(obj_->attr("accuracy")(th, s), acc, P, "accuracy");
  }
  void evaluate_each(const T* theta, int64_t P, const int64_t* samples, int64_t B, T* loss,
                     T* grad) const override {
    py::gil_scoped_acquire gil;
    carray<T> th({P, D_});
    std::memcpy(th.mutable_data(), theta, sizeof(T) * P * D_);
    carray<int64_t> sa({P, B});
    std::memcpy(sa.mutable_data(), samples, sizeof(int64_t) * P * B);
    py::tuple r = obj_->attr("evaluate_each")(th, sa).template cast<py::tuple>();
    copy_out(r[0], loss, P, "loss");
    if (grad) copy_out(r[1], grad, P * D_, "grad");
  }

 private:
  static void copy_out(py::handle h, T* dst, int64_t n, const char* what) {
    copy_from(h, dst, n, std::string("objective: ") + what);
  }
  GilObject obj_;  // dropped, with the GIL, wherever the engine drops this objective
  int64_t D_, n_;
  bool cls_;
};

// A compiled objective as is, or a Python objective wrapped (and owned by `owner`).
template <typename T>
const Objective<T>* as_objective(py::object o, std::vector<std::shared_ptr<const void>>& owner) {
  if (o.is_none()) return nullptr;
  if (const Objective<T>* obj = native_objective<T>(o)) return obj;
  auto p = std::make_shared<PyObjective<T>>(o);
  owner.push_back(p);
  return p.get();
}

template <typename T>
void bind_trainer(py::module_& m, const char* name) {
  using TR = Trainer<T>;
  py::class_<TR>(m, name)
      .def(py::init([](py::object train, py::object test, carray<T> theta0,
                       const std::string& method, int epochs, const SGDParams& sgd,
                       uint64_t seed, std::vector<uint64_t> run_seeds,
                       const LBFGSParams& lbfgs) {
             std::vector<std::shared_ptr<const void>> owned;
             const Objective<T>* tr = as_objective<T>(train, owned);
             const Objective<T>* te = as_objective<T>(test, owned);
             if (!tr) throw std::invalid_argument("train: a landscape is required");
             if (theta0.ndim() != 2 || theta0.shape(1) != tr->num_params())
               throw std::invalid_argument("theta0: expected shape (R, " +
                                           std::to_string(tr->num_params()) + ")");
             TrainParams p;
             if (method == "sgd") p.method = Method::SGD;
             else if (method == "lbfgs") p.method = Method::LBFGS;
             else throw std::invalid_argument("method: expected 'sgd' or 'lbfgs', got '" + method + "'");
             p.epochs = epochs;
             p.sgd = sgd;
             p.seed = seed;
             p.run_seeds = std::move(run_seeds);
             p.lbfgs = lbfgs;
             auto* t = new TR(*tr, te, theta0.data(), theta0.shape(0), p);
             t->owned = std::move(owned);
             return t;
           }),
           py::keep_alive<1, 2>(), py::keep_alive<1, 3>(), py::arg("train"), py::arg("test"),
           py::arg("theta0"), py::arg("method"), py::arg("epochs"), py::arg("sgd"),
           py::arg("seed"), py::arg("run_seeds"), py::arg("lbfgs"))
      .def(
          "run",
          [](TR& self, int until, py::object callback) {
            std::function<bool(int)> cb = step_callback(callback);
            py::gil_scoped_release release;
            self.run(until, cb);
          },
          py::arg("until"), py::arg("callback") = py::none())
      .def_property_readonly("epoch", &TR::epoch)
      .def(
          "train_loss_at",
          [](const TR& self, int e) {
            const int64_t R = self.runs(), E1 = self.params().epochs + 1;
            if (e < 0 || e >= E1) throw std::invalid_argument("epoch out of range");
            carray<double> out(R);
            for (int64_t r = 0; r < R; ++r) out.mutable_data()[r] = self.train_loss[r * E1 + e];
            return out;
          },
          py::arg("epoch"))
      .def_property_readonly("finished", &TR::finished)
      .def_readonly("step_seconds", &TR::step_seconds)
      .def_readonly("eval_seconds", &TR::eval_seconds)
      .def("state",
           [](const TR& self) {
             const int64_t R = self.runs();
             py::dict d;
             d["theta"] = rows(self.theta, R);
             d["velocity"] = rows(self.velocity, self.velocity.empty() ? 0 : R);
             d["best_train_theta"] = rows(self.best_train_theta, R);
             d["best_test_theta"] = rows(self.best_test_theta, R);
             d["train_loss"] = rows(self.train_loss, R);
             d["test_loss"] = rows(self.test_loss, R);
             d["train_acc"] = rows(self.train_acc, R);
             d["test_acc"] = rows(self.test_acc, R);
             d["best_train_epoch"] = rows(self.best_train_epoch, R).attr("reshape")(-1);
             d["best_test_epoch"] = rows(self.best_test_epoch, R).attr("reshape")(-1);
             d["status"] = rows(self.status, R).attr("reshape")(-1);
             auto st = self.lbfgs_state();
             if (!st.f.empty()) {
               d["lbfgs_f"] = rows(st.f, R).attr("reshape")(-1);
               d["lbfgs_g"] = rows(st.g, R);
               d["lbfgs_S"] = rows(st.S, R);
               d["lbfgs_Y"] = rows(st.Y, R);
               d["lbfgs_count"] = rows(st.count, R).attr("reshape")(-1);
               d["lbfgs_nit"] = rows(st.nit, R).attr("reshape")(-1);
               d["lbfgs_nfev"] = rows(st.nfev, R).attr("reshape")(-1);
               d["lbfgs_njev"] = rows(st.njev, R).attr("reshape")(-1);
             }
             return d;
           })
      .def("restore", [](TR& self, int epoch, const py::dict& d) {
        set_rows(self.theta, d["theta"], "theta");
        set_rows(self.velocity, d["velocity"], "velocity");
        set_rows(self.best_train_theta, d["best_train_theta"], "best_train_theta");
        set_rows(self.best_test_theta, d["best_test_theta"], "best_test_theta");
        set_rows(self.train_loss, d["train_loss"], "train_loss");
        set_rows(self.test_loss, d["test_loss"], "test_loss");
        set_rows(self.train_acc, d["train_acc"], "train_acc");
        set_rows(self.test_acc, d["test_acc"], "test_acc");
        set_rows(self.best_train_epoch, d["best_train_epoch"], "best_train_epoch");
        set_rows(self.best_test_epoch, d["best_test_epoch"], "best_test_epoch");
        set_rows(self.status, d["status"], "status");
        typename TR::LBFGSState st;
        if (d.contains("lbfgs_f")) {
          const int64_t R = self.runs(), D = self.dim();
          const int m = self.params().lbfgs.history;
          st.f.resize(R);
          st.g.resize(R * D);
          st.S.resize(size_t(R) * m * D);
          st.Y.resize(size_t(R) * m * D);
          st.count.resize(R);
          st.nit.resize(R);
          st.nfev.resize(R);
          st.njev.resize(R);
          set_rows(st.f, d["lbfgs_f"], "lbfgs_f");
          set_rows(st.g, d["lbfgs_g"], "lbfgs_g");
          set_rows(st.S, d["lbfgs_S"], "lbfgs_S");
          set_rows(st.Y, d["lbfgs_Y"], "lbfgs_Y");
          set_rows(st.count, d["lbfgs_count"], "lbfgs_count");
          set_rows(st.nit, d["lbfgs_nit"], "lbfgs_nit");
          set_rows(st.nfev, d["lbfgs_nfev"], "lbfgs_nfev");
          set_rows(st.njev, d["lbfgs_njev"], "lbfgs_njev");
        }
        self.restore(epoch, st.f.empty() ? nullptr : &st);
      });
}

}  // namespace

void bind_optim(py::module_& m) {
  m.def("minimize_lbfgs_f32", &minimize_lbfgs<float>, py::arg("fun"), py::arg("x0"),
        py::arg("params"), py::arg("callback") = py::none());
  m.def("minimize_lbfgs_f64", &minimize_lbfgs<double>, py::arg("fun"), py::arg("x0"),
        py::arg("params"), py::arg("callback") = py::none());
  m.def("line_search_1d", &line_search_1d, py::arg("phi"), py::arg("f0"), py::arg("slope0"),
        py::arg("scale"), py::arg("params"));
  m.def(
      "permutation",
      [](uint64_t seed, uint64_t stream, uint64_t epoch, int64_t n) {
        if (n < 0) throw std::invalid_argument("n: must be non-negative");
        carray<int64_t> out(n);
        permutation(seed, stream, epoch, n, out.mutable_data());
        return out;
      },
      py::arg("seed"), py::arg("stream"), py::arg("epoch"), py::arg("n"));
  bind_trainer<float>(m, "TrainerF32");
  bind_trainer<double>(m, "TrainerF64");
  py::dict codes;
  for (int s = 0; s <= int(Status::Stopped); ++s) codes[py::int_(s)] = status_message(Status(s));
  m.attr("status_messages") = codes;
}
