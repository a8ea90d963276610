"""The MQTT bridge: camsvc joins a fleet through an MQTT broker.

Off by default (``mqtt.enabled``).  One concern per module:

* :mod:`~camsvc.mqtt.settings` — the ``mqtt:`` section resolved for a connection
  (URL to host/port/TLS, password file, host id, client id, base topic);
* :mod:`~camsvc.mqtt.topics` — the topic layout under the base topic and the
  Home Assistant discovery topics;
* :mod:`~camsvc.mqtt.payloads` — message bodies: state, events and the Home
  Assistant discovery configurations;
* :mod:`~camsvc.mqtt.client` — the paho-mqtt client driven by the reactor
  (socket callbacks, no threads), reconnect with backoff;
* :mod:`~camsvc.mqtt.bridge` — what is published when, the bounded event queue
  while disconnected, and commands run through the JSON-RPC engine;
* :mod:`~camsvc.mqtt.component` — ``setup(app)``, the composition entry point.
"""
