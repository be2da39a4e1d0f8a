"""vss model side: architectures, bundle format, CamVid evaluation, export."""
