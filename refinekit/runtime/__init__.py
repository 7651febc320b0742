"""Where and how networks run: device and precision, processes under torchrun, cache-sized chunks."""
