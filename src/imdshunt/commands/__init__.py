"""Click command groups; ``imdshunt.cli`` registers them. Each maps library errors to exits."""
