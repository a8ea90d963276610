# Security: authentication cost on the request path (figures in docs/performance.md).
# The tests need nothing beyond the venv (PyJWT, hypothesis, cryptography for the TLS test certificate).
.PHONY: bench-auth
bench-auth: venv
	$(PY) bench/auth.py
