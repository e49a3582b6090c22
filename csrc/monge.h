/* monge: optimal transport in C.  One include for the whole public API. */
#ifndef MONGE_H
#define MONGE_H
#include "common.h"
#include "geometry.h"
#include "problem.h"
#include "sinkhorn.h"
#include "lbfgs.h"
#include "smooth_ot.h"
#include "losses.h"
#include "emd.h"
#include "ctc.h"
#include "align.h"
#include "spectr.h"
#include "barycenter.h"
#include "gromov.h"
#endif
