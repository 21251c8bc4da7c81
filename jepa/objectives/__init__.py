"""Loss functions of JEPA objectives: pure tensor math, no modules, no training state.

``regression`` compares predicted and target representations (``motion`` weights its tokens by pixel change); ``sigreg`` and ``vicreg`` are the
anti-collapse regularisers that replace an EMA target (``jepa.train.objective`` composes them).
"""

from .motion import motion_weights, weighted_regression_loss
from .regression import RegressionLoss, jepa_regression_loss
from .sigreg import epps_pulley, sigreg
from .vicreg import covariance_loss, variance_loss

__all__ = ["RegressionLoss", "jepa_regression_loss", "motion_weights", "weighted_regression_loss", "sigreg", "epps_pulley", "variance_loss", "covariance_loss"]
