"""The pieces every stage uses: errors, payload types, defaults, registries, bundled weights, CPU rules."""
