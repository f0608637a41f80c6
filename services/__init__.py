"""perception-rl services: reward, embedding, store, benchmark, leaderboard and their shared parts."""
