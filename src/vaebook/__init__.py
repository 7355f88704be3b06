"""vaebook: the library behind the book on latent generative models of MNIST."""

__version__ = "0.1.0"
