"""stages."""




