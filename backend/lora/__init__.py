"""LoRAs and LyCORIS files: found in the models folder (registry), asked for by jobs (request), applied (apply)."""
