# MQTT bridge (camsvc/mqtt, docs/mqtt.md): the tests start Debian's Mosquitto themselves
# (tests/support/mosquitto.py); under CI=true a missing mosquitto fails them.
# paho-mqtt comes from PyPI in the venv and from python3-paho-mqtt (1.6.1) in the .deb
# and in make test-deb12-libs.
APT_PACKAGES += mosquitto

.PHONY: bench-mqtt
bench-mqtt: venv
	$(PY) bench/mqtt_latency.py
bench: bench-mqtt
