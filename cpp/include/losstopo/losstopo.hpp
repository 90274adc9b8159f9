// losstopo: the whole C++ API in one include.
//
//   MLPSpec, Landscape<T>          the batched loss landscape of an MLP (landscape.hpp)
//   GoldenSectionSearch, StrongWolfeSearch   line searches as policies (line_search.hpp)
//   BatchLBFGS<T>, BatchFunction<T>          lockstep L-BFGS over any batched functor (lbfgs.hpp)
//   sgd_epoch, permutation         minibatch SGD for populations (sgd.hpp)
//   Trainer<T>                     populations with loss curves and snapshots (train.hpp)
//   PathBatch<T>                   FourierPathFinder over any batched energy (path.hpp)
//
// Link with the CMake target losstopo::core (find_package(losstopo CONFIG)).
#pragma once

#include "losstopo/landscape.hpp"
#include "losstopo/lbfgs.hpp"
#include "losstopo/line_search.hpp"
#include "losstopo/mlp.hpp"
#include "losstopo/path.hpp"
#include "losstopo/sgd.hpp"
#include "losstopo/train.hpp"
