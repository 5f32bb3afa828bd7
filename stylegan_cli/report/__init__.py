"""`sgan report`: one self-contained HTML page about a run (curves as inline SVG, images as data: URIs)."""
