"""sycam — metric-guided synthesis of class activation maps (SyCAM)."""

__version__ = "0.1.0"
