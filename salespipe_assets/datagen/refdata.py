"""Static reference data the synthetic dimensions are drawn from.

Cities (with their market, region, country and rough coordinates), store types and the
product hierarchy (categories, subcategories, brands). Pure data, no randomness.
"""

from __future__ import annotations

# (city, state/province code, state/province name, country code, region, market, lat, long, zip prefix)
CITIES = (
    ("New York", "NY", "New York", "US", "Northeast", "New York Metro", 40.7128, -74.0060, "100"),
    ("Newark", "NJ", "New Jersey", "US", "Northeast", "New York Metro", 40.7357, -74.1724, "071"),
    ("Yonkers", "NY", "New York", "US", "Northeast", "New York Metro", 40.9312, -73.8987, "107"),
    ("Boston", "MA", "Massachusetts", "US", "Northeast", "New England", 42.3601, -71.0589, "021"),
    ("Providence", "RI", "Rhode Island", "US", "Northeast", "New England", 41.8240, -71.4128, "029"),
    ("Philadelphia", "PA", "Pennsylvania", "US", "Northeast", "Mid-Atlantic", 39.9526, -75.1652, "191"),
    ("Baltimore", "MD", "Maryland", "US", "Northeast", "Mid-Atlantic", 39.2904, -76.6122, "212"),
    ("Atlanta", "GA", "Georgia", "US", "Southeast", "Atlanta Metro", 33.7490, -84.3880, "303"),
    ("Marietta", "GA", "Georgia", "US", "Southeast", "Atlanta Metro", 33.9526, -84.5499, "300"),
    ("Miami", "FL", "Florida", "US", "Southeast", "South Florida", 25.7617, -80.1918, "331"),
    ("Fort Lauderdale", "FL", "Florida", "US", "Southeast", "South Florida", 26.1224, -80.1373, "333"),
    ("Orlando", "FL", "Florida", "US", "Southeast", "Central Florida", 28.5383, -81.3792, "328"),
    ("Tampa", "FL", "Florida", "US", "Southeast", "Central Florida", 27.9506, -82.4572, "336"),
    ("Charlotte", "NC", "North Carolina", "US", "Southeast", "Carolinas", 35.2271, -80.8431, "282"),
    ("Raleigh", "NC", "North Carolina", "US", "Southeast", "Carolinas", 35.7796, -78.6382, "276"),
    ("Chicago", "IL", "Illinois", "US", "Midwest", "Chicagoland", 41.8781, -87.6298, "606"),
    ("Naperville", "IL", "Illinois", "US", "Midwest", "Chicagoland", 41.7508, -88.1535, "605"),
    ("Detroit", "MI", "Michigan", "US", "Midwest", "Great Lakes", 42.3314, -83.0458, "482"),
    ("Cleveland", "OH", "Ohio", "US", "Midwest", "Great Lakes", 41.4993, -81.6944, "441"),
    ("Minneapolis", "MN", "Minnesota", "US", "Midwest", "Twin Cities", 44.9778, -93.2650, "554"),
    ("St. Paul", "MN", "Minnesota", "US", "Midwest", "Twin Cities", 44.9537, -93.0900, "551"),
    ("Dallas", "TX", "Texas", "US", "Southwest", "Dallas-Fort Worth", 32.7767, -96.7970, "752"),
    ("Fort Worth", "TX", "Texas", "US", "Southwest", "Dallas-Fort Worth", 32.7555, -97.3308, "761"),
    ("Houston", "TX", "Texas", "US", "Southwest", "Greater Houston", 29.7604, -95.3698, "770"),
    ("Phoenix", "AZ", "Arizona", "US", "Southwest", "Valley of the Sun", 33.4484, -112.0740, "850"),
    ("Scottsdale", "AZ", "Arizona", "US", "Southwest", "Valley of the Sun", 33.4942, -111.9261, "852"),
    ("Los Angeles", "CA", "California", "US", "West", "Southern California", 34.0522, -118.2437, "900"),
    ("San Diego", "CA", "California", "US", "West", "Southern California", 32.7157, -117.1611, "921"),
    ("San Francisco", "CA", "California", "US", "West", "Bay Area", 37.7749, -122.4194, "941"),
    ("San Jose", "CA", "California", "US", "West", "Bay Area", 37.3382, -121.8863, "951"),
    ("Seattle", "WA", "Washington", "US", "West", "Pacific Northwest", 47.6062, -122.3321, "981"),
    ("Portland", "OR", "Oregon", "US", "West", "Pacific Northwest", 45.5152, -122.6784, "972"),
    ("Denver", "CO", "Colorado", "US", "West", "Front Range", 39.7392, -104.9903, "802"),
    ("Toronto", "ON", "Ontario", "CA", "Central Canada", "Greater Toronto", 43.6532, -79.3832, "M5V"),
    ("Mississauga", "ON", "Ontario", "CA", "Central Canada", "Greater Toronto", 43.5890, -79.6441, "L5B"),
    ("Ottawa", "ON", "Ontario", "CA", "Central Canada", "National Capital", 45.4215, -75.6972, "K1P"),
    ("Montréal", "QC", "Québec", "CA", "Central Canada", "Greater Montréal", 45.5017, -73.5673, "H2Y"),
    ("Laval", "QC", "Québec", "CA", "Central Canada", "Greater Montréal", 45.6066, -73.7124, "H7N"),
    ("Vancouver", "BC", "British Columbia", "CA", "Western Canada", "Lower Mainland", 49.2827, -123.1207, "V6B"),
    ("Surrey", "BC", "British Columbia", "CA", "Western Canada", "Lower Mainland", 49.1913, -122.8490, "V3T"),
    ("Calgary", "AB", "Alberta", "CA", "Western Canada", "Prairies", 51.0447, -114.0719, "T2P"),
    ("Edmonton", "AB", "Alberta", "CA", "Western Canada", "Prairies", 53.5461, -113.4938, "T5J"),
    ("Halifax", "NS", "Nova Scotia", "CA", "Atlantic Canada", "Maritimes", 44.6488, -63.5752, "B3H"),
)
# Relative number of stores per city (bigger metros get more stores).
CITY_WEIGHT = (
    9, 3, 2, 5, 2, 5, 3, 5, 2, 5, 2, 3, 3, 3, 2, 8, 2, 4, 3, 3, 2, 6, 3, 6, 5, 2,
    9, 4, 4, 3, 4, 3, 3, 7, 3, 3, 5, 2, 4, 2, 3, 3, 2,
)
COUNTRY_NAME = {"US": "United States", "CA": "Canada"}

STREETS = (
    "Main St", "Oak Ave", "Maple Dr", "Elm St", "Park Blvd", "Lakeshore Rd", "King St W",
    "Queen St E", "Broadway", "Market St", "Washington Ave", "Sunset Blvd", "Pine St",
    "Cedar Ln", "Highland Ave", "River Rd", "Commerce Pkwy", "Church St", "Mill Rd", "Union Sq",
)

# code, description, share of stores, size range (sq ft), traffic multiplier,
# share of the product range stocked, franchise probability
STORE_TYPES = (
    ("SUP", "Supermarket", 0.50, (25_000, 55_000), 1.0, 0.88, 0.20),
    ("HYP", "Hypermarket", 0.15, (80_000, 180_000), 2.4, 0.98, 0.05),
    ("EXP", "Express", 0.25, (2_500, 8_000), 0.35, 0.55, 0.60),
    ("ONL", "Online Fulfilment", 0.10, (40_000, 120_000), 1.3, 0.92, 0.00),
)
STORE_BANNERS = {"SUP": "FreshMart", "HYP": "MegaMart", "EXP": "FreshMart Express", "ONL": "FreshMart Online"}

# category, [subcategories], [brands], price range ($), cost ratio range,
# weighed share, perishable, seasonal amplitude, seasonal peak day-of-year, holiday bump, volume (l) range
CATEGORIES = (
    ("Produce", ["Fruit", "Vegetables", "Salads", "Herbs"],
     ["Green Valley", "Sunripe", "Orchard Lane", "FarmFresh"], (0.8, 6.0), (0.55, 0.75), 0.60, True, 0.12, 200, 0.05, None),
    ("Dairy", ["Milk", "Cheese", "Yogurt", "Butter & Cream"],
     ["Meadow Gold", "Alpine Farms", "Daisy Hill", "Northern Dairy"], (1.2, 9.0), (0.60, 0.80), 0.10, True, 0.03, 30, 0.08, (0.2, 4.0)),
    ("Bakery", ["Bread", "Pastries", "Cakes"],
     ["Hearth & Co", "Golden Crust", "Baker's Choice"], (1.5, 12.0), (0.45, 0.70), 0.00, True, 0.05, 350, 0.30, None),
    ("Meat & Seafood", ["Beef", "Poultry", "Pork", "Seafood"],
     ["Prairie Ranch", "Coastal Catch", "Butcher's Block"], (4.0, 30.0), (0.65, 0.85), 0.70, True, 0.15, 190, 0.15, None),
    ("Deli", ["Cold Cuts", "Prepared Meals", "Specialty Cheese"],
     ["Deli Fresh", "Old World", "Chef's Table"], (3.0, 15.0), (0.50, 0.70), 0.50, True, 0.04, 180, 0.20, None),
    ("Beverages", ["Soft Drinks", "Water", "Juice", "Coffee & Tea"],
     ["Fizz", "Crystal Spring", "Tropicana Grove", "Morning Roast", "Polar Peak"], (0.9, 14.0), (0.50, 0.75), 0.00, False, 0.20, 200, 0.15, (0.33, 2.0)),
    ("Snacks", ["Chips", "Crackers", "Nuts", "Cookies"],
     ["Crunchy Co", "Harvest Bites", "Salty Sam", "Nutty Grove"], (1.5, 8.0), (0.45, 0.70), 0.05, False, 0.06, 200, 0.20, None),
    ("Confectionery", ["Chocolate", "Candy", "Gum"],
     ["Cocoa Bliss", "Sugar Rush", "Minty"], (0.8, 15.0), (0.40, 0.65), 0.00, False, 0.10, 40, 0.60, None),
    ("Frozen", ["Ice Cream", "Frozen Meals", "Frozen Vegetables", "Pizza"],
     ["Polar Peak", "Frosty Farms", "Nonna's"], (2.5, 12.0), (0.55, 0.75), 0.00, False, 0.22, 195, 0.05, (0.5, 2.0)),
    ("Pantry", ["Pasta & Rice", "Canned Goods", "Sauces", "Baking", "Cereal"],
     ["Pantry Pride", "Nonna's", "Golden Field", "Harvest Bites"], (0.9, 9.0), (0.55, 0.78), 0.05, False, 0.05, 330, 0.15, None),
    ("Household", ["Cleaning", "Paper Goods", "Laundry"],
     ["SparkleHome", "SoftTouch", "Fresh Linen"], (2.0, 25.0), (0.55, 0.75), 0.00, False, 0.03, 90, 0.05, (0.5, 5.0)),
    ("Personal Care", ["Hair Care", "Oral Care", "Skin Care"],
     ["Pure Glow", "Bright Smile", "Aqua Vita"], (2.0, 20.0), (0.45, 0.70), 0.00, False, 0.04, 170, 0.15, (0.1, 1.0)),
)
# Subcategories sold by volume: they get `vol` (litres) from their category's range.
LIQUID_SUBCATEGORIES = frozenset({
    "Milk", "Yogurt", "Butter & Cream", "Soft Drinks", "Water", "Juice", "Ice Cream",
    "Cleaning", "Laundry", "Hair Care", "Skin Care",
})
# Relative weight of each category in the product range.
CATEGORY_WEIGHT = (14, 10, 6, 9, 5, 11, 9, 5, 8, 12, 6, 5)

VARIANTS = (
    "Original", "Classic", "Organic", "Family Pack", "Light", "Premium", "Value", "Extra",
    "Select", "Deluxe", "Mini", "Large", "Natural", "Homestyle", "Zesty",
)

# status code, name, share of products, demand multiplier
STATUSES = (
    (1, "Active", 0.88, 1.0),
    (2, "Seasonal", 0.06, 0.8),
    (3, "Discontinued", 0.04, 0.35),
    (4, "New", 0.02, 0.6),
)

# Intraday shape of in-store transactions (relative weight per hour 0..23).
HOURLY_WEIGHT = (
    0.15, 0.08, 0.05, 0.05, 0.06, 0.2, 0.8, 2.2, 3.6, 4.6, 5.6, 7.0,
    8.4, 7.6, 6.0, 5.6, 6.6, 8.3, 8.8, 7.2, 5.0, 3.4, 1.8, 0.6,
)
# Demand by day of week, 0 = Sunday .. 6 = Saturday (normalised to mean 1 at use).
WEEKDAY_WEIGHT = (1.10, 0.82, 0.80, 0.88, 0.98, 1.18, 1.40)

DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
