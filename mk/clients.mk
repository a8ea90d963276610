# Clients (issue 9).  The dashboard's browser test needs Debian's Chromium and
# its WebDriver (Selenium comes from the venv; nothing is downloaded at test
# time); the shell example uses curl and jq; camsvc-cli and the Python example
# are also tested on Debian 12's own python3 libraries, as the .deb runs them.
APT_PACKAGES += chromium chromium-driver jq \
	python3-twisted python3-autobahn python3-treq python3-websockets

.PHONY: screenshots
# Re-run the browser test and refresh the README's screenshots in docs/images/.
screenshots: venv
	CAMSVC_UPDATE_SCREENSHOTS=1 $(PY) -m pytest -q tests/test_dashboard.py

.PHONY: bench-clients
# Dashboard load and hotplug-to-screen latency in Chromium, camsvc-cli wall time.
bench-clients: venv
	$(PY) bench/clients.py
bench: bench-clients
