"""deep."""




