"""Face terminals (docs/face-terminals.md): their device CA, the MQTT broker's configuration, Space's MQTT link."""
