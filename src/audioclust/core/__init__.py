"""core."""




