"""Hugging Face dataset-card templates, one per dataset; builders fill them with real counts."""
