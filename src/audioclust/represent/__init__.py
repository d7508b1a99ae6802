"""represent."""




