"""Pure detection logic: the detect loop, person selection, priors, crops, hand search and hand checks (no files, no Ray, no config objects; settings are plain dicts)."""
