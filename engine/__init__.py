"""Training, online tuning and inference loops shared by the entry scripts."""
