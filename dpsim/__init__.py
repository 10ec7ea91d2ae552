"""dpsim: a discrete-event simulator of prefill/decode-disaggregated LLM inference with DualPath KV loading."""

__version__ = "0.1.0"
