"""weakdeblur: blind deblurring with deep priors and weak supervision."""

__version__ = "0.1.0"
