console.log("PetPortal 2.3");
